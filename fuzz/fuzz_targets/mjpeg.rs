//! An MJPEG camera stream (`multipart/x-mixed-replace`), as hyper hands it
//! over: arbitrary bytes in arbitrary chunks. The part reader must never
//! panic, must give up once it holds too much, and must stay bounded.
//!
//! Input: a first line with the boundary (the header's `boundary=`
//! parameter), one byte seeding the chunk sizes, then the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use marquee::camera::source::mjpeg::PartReader;

/// Small, so the over-the-limit paths are reached by short inputs.
const MAX_PART: usize = 4096;
const MAX_CHUNK: usize = 97;

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().take(72).position(|&b| b == b'\n') else {
        return;
    };
    let (boundary, rest) = (&data[..newline], &data[newline + 1..]);
    let Some((&seed, stream)) = rest.split_first() else {
        return;
    };
    // What the camera source builds from the header: `--` and the boundary
    // without dashes of its own.
    let boundary = boundary.strip_prefix(b"--").unwrap_or(boundary);
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);

    let mut reader = PartReader::new(delimiter.clone(), MAX_PART);
    let mut state = u32::from(seed) | 1;
    let mut at = 0;
    while at < stream.len() {
        // A small LCG: the same input always splits the same way.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = 1 + (state >> 16) as usize % MAX_CHUNK;
        let chunk = &stream[at..(at + size).min(stream.len())];
        at += chunk.len();
        reader.push(chunk);
        loop {
            match reader.next_part() {
                Ok(Some(part)) => assert!(
                    part.len() <= MAX_PART + MAX_CHUNK,
                    "a {}-byte part with a {MAX_PART}-byte limit",
                    part.len()
                ),
                Ok(None) => break,
                // The camera source drops the connection here.
                Err(_) => return,
            }
        }
        // Headers and junk before a part are bounded by the limit too, and
        // a declared part by its length: never more than two limits' worth.
        let bound = 2 * (MAX_PART + delimiter.len() + 4) + MAX_CHUNK;
        assert!(
            reader.buffered() <= bound,
            "{} bytes held without an error",
            reader.buffered()
        );
    }
});
