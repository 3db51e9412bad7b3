//! The parts of an MJPEG stream (`multipart/x-mixed-replace`), read as the
//! bytes arrive. Linear in the stream: every search resumes where the last
//! one stopped, so a camera (or anyone posing as one) that never sends a
//! boundary costs one pass over its bytes, not one pass per chunk.

use bytes::{Buf as _, Bytes, BytesMut};
use memchr::memmem;

/// Where the search for the current part stands.
#[derive(Debug, Default, Clone, Copy)]
enum Stage {
    /// Looking for the delimiter from `from`.
    #[default]
    Delimiter,
    /// Delimiter at `start`; looking for the end of the part's headers.
    Headers { start: usize },
    /// Headers end at `body`; the body's length is known or it runs to the
    /// next delimiter.
    Body { body: usize, end: Option<usize> },
}

/// An MJPEG stream's bytes, taken apart into JPEG parts.
#[derive(Debug)]
pub struct PartReader {
    /// `--boundary`, as it appears on the delimiter lines.
    delimiter: Vec<u8>,
    buf: BytesMut,
    stage: Stage,
    /// Where the current stage's search resumes.
    from: usize,
    /// The largest part (and the most bytes held without one).
    max_part: usize,
    /// Bytes looked at so far (for the linearity test).
    examined: usize,
}

impl PartReader {
    pub fn new(delimiter: Vec<u8>, max_part: usize) -> Self {
        Self {
            delimiter,
            buf: BytesMut::new(),
            stage: Stage::Delimiter,
            from: 0,
            max_part,
            examined: 0,
        }
    }

    /// Bytes held, not yet returned as a part.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete part's body, if the bytes so far hold one. An
    /// error means the stream cannot be trusted any further.
    pub fn next_part(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            match self.stage {
                Stage::Delimiter => {
                    let delimiter = self.delimiter.clone();
                    match self.search(&delimiter) {
                        Some(start) => {
                            // The headers' end is looked for after the
                            // delimiter: one that ends in CR or LF would
                            // otherwise match inside it.
                            let after = start + self.delimiter.len();
                            self.enter(Stage::Headers { start }, after)
                        }
                        None => return self.held_too_much(),
                    }
                }
                Stage::Headers { start } => match self.search(b"\r\n\r\n") {
                    Some(head_end) => {
                        let headers = &self.buf[start + self.delimiter.len()..head_end];
                        let length = content_length(headers);
                        let body = head_end + 4;
                        let end = match length {
                            Some(length) if length > self.max_part => {
                                return Err(format!(
                                    "an MJPEG part declares {length} bytes, over the {}-byte limit",
                                    self.max_part
                                ))
                            }
                            Some(length) => Some(body + length),
                            None => None,
                        };
                        self.enter(Stage::Body { body, end }, body);
                    }
                    None => return self.held_too_much(),
                },
                Stage::Body { body, end } => {
                    let end = match end {
                        Some(end) if self.buf.len() >= end => end,
                        Some(_) => return Ok(None),
                        None => {
                            let delimiter = self.delimiter.clone();
                            match self.search(&delimiter) {
                                Some(next) => next,
                                None => return self.held_too_much(),
                            }
                        }
                    };
                    let mut part = self.buf.split_to(end);
                    part.advance(body);
                    let mut part = part.freeze();
                    // The CRLF before the next delimiter belongs to it.
                    while part.ends_with(b"\r\n") {
                        part.truncate(part.len() - 2);
                    }
                    self.enter(Stage::Delimiter, 0);
                    return Ok(Some(part));
                }
            }
        }
    }

    fn enter(&mut self, stage: Stage, from: usize) {
        self.stage = stage;
        self.from = from;
    }

    /// Find `needle` from where the last search stopped; remember where to
    /// resume when it is not there yet (a match may straddle the end).
    fn search(&mut self, needle: &[u8]) -> Option<usize> {
        let from = self.from.min(self.buf.len());
        let hay = &self.buf[from..];
        self.examined += hay.len();
        match memmem::find(hay, needle) {
            Some(at) => Some(from + at),
            None => {
                // Never back before where this search began (a match that
                // straddles the end starts at or after it).
                let straddle = self
                    .buf
                    .len()
                    .saturating_sub(needle.len().saturating_sub(1));
                self.from = straddle.max(from);
                None
            }
        }
    }

    fn held_too_much(&self) -> Result<Option<Bytes>, String> {
        if self.buf.len() > self.max_part {
            return Err(format!(
                "the MJPEG stream sent over {} bytes without a complete part",
                self.max_part
            ));
        }
        Ok(None)
    }
}

/// The `Content-Length` of a part's headers, if given and a number.
fn content_length(headers: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(headers).lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 16 * 1024 * 1024;

    #[test]
    fn parts_with_and_without_length_arrive_in_pieces() {
        let jpeg = crate::drawing::drawn_poster_jpeg(1, 32, 24);
        let mut stream = Vec::new();
        stream.extend_from_slice(b"--frame\r\nContent-Type: image/jpeg\r\n");
        stream.extend_from_slice(format!("Content-Length: {}\r\n\r\n", jpeg.len()).as_bytes());
        stream.extend_from_slice(&jpeg);
        stream.extend_from_slice(b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n");
        stream.extend_from_slice(&jpeg);
        stream.extend_from_slice(b"\r\n--frame\r\n");
        for chunk_size in [1, 7, 100, stream.len()] {
            let mut reader = PartReader::new(b"--frame".to_vec(), LIMIT);
            let mut parts = Vec::new();
            for chunk in stream.chunks(chunk_size) {
                reader.push(chunk);
                while let Some(part) = reader.next_part().unwrap() {
                    parts.push(part);
                }
            }
            assert_eq!(parts.len(), 2, "chunks of {chunk_size}");
            for part in parts {
                assert_eq!(&part[..], &jpeg[..]);
            }
        }
    }

    #[test]
    fn a_stream_without_a_boundary_is_read_once_and_refused_at_the_limit() {
        let limit = 1024 * 1024;
        let mut reader = PartReader::new(b"--frame".to_vec(), limit);
        let chunk = vec![0x55u8; 4096];
        let mut pushed = 0;
        let refused = loop {
            reader.push(&chunk);
            pushed += chunk.len();
            match reader.next_part() {
                Ok(None) => {}
                Ok(Some(_)) => panic!("no part without a boundary"),
                Err(reason) => break reason,
            }
            assert!(pushed <= limit + chunk.len(), "not refused at the limit");
        };
        assert!(refused.contains("without a complete part"), "{refused}");
        // Restarting every search from 0 would have looked at ~pushed²/8 KB.
        assert!(
            reader.examined <= pushed + chunk.len(),
            "examined {} bytes of {pushed}",
            reader.examined
        );
    }

    /// Found by the `mjpeg` fuzz target: a delimiter ending in CR put the
    /// end of the headers inside the delimiter, and slicing between the two
    /// panicked. Whole, and a byte at a time (the search then resumes near
    /// the end of what it has).
    #[test]
    fn a_delimiter_ending_in_cr_does_not_panic() {
        let stream: &[u8] = b"--\r\n\r\n--\r\n\r\nhi\r\n--\r";
        for chunk_size in [stream.len(), 1] {
            let mut reader = PartReader::new(b"--\r".to_vec(), LIMIT);
            let mut parts = Vec::new();
            for chunk in stream.chunks(chunk_size) {
                reader.push(chunk);
                while let Some(part) = reader.next_part().unwrap() {
                    parts.push(part);
                }
            }
            assert_eq!(parts, [&b"hi"[..]], "chunks of {chunk_size}");
        }
    }

    #[test]
    fn headers_that_never_end_and_oversize_parts_are_refused() {
        let mut reader = PartReader::new(b"--b".to_vec(), 64);
        reader.push(b"--b\r\nX: ");
        reader.push(&[b'y'; 100]);
        assert!(reader.next_part().is_err());

        let mut reader = PartReader::new(b"--b".to_vec(), 64);
        reader.push(b"--b\r\nContent-Length: 1000\r\n\r\n");
        let err = reader.next_part().unwrap_err();
        assert!(err.contains("declares 1000 bytes"), "{err}");
    }
}
