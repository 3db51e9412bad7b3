//! Whether a JPEG's entropy-coded data holds every block its header
//! promises.
//!
//! Every JPEG decoder in reach (zune-jpeg, jpeg-decoder, libjpeg) meets the
//! end of the data early by padding with zero bits and painting the rest of
//! the image; a file cut short and given an `FF D9` again decodes "fine".
//! This walks the Huffman codes of each scan, without the inverse DCT, and
//! counts the blocks: data that ends (at a marker or the end of the file)
//! before the last block is complete means the image is truncated.
//!
//! It speaks baseline and extended sequential Huffman JPEG, and the first
//! scans of progressive JPEG. What it cannot judge (arithmetic coding,
//! progressive refinement scans, anything it does not parse) it leaves to
//! the decoder: only a certain truncation is reported.

/// What the walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Every scan it could walk was complete.
    Complete,
    /// A scan ended after `blocks` of its `expected` blocks.
    Truncated { blocks: u64, expected: u64 },
    /// Not a file this walk can judge; the decoder decides.
    Unknown,
}

#[derive(Debug, Clone, Default)]
struct Huffman {
    /// Per code length 1..=16: the largest code of that length (or -1),
    /// the first code, and where its symbols start in `symbols`.
    max_code: [i32; 17],
    min_code: [i32; 17],
    first_symbol: [usize; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: Vec<u8>) -> Self {
        let mut table = Self {
            max_code: [-1; 17],
            symbols,
            ..Self::default()
        };
        let mut code = 0i32;
        let mut k = 0usize;
        for length in 1..=16 {
            let n = usize::from(counts[length - 1]);
            if n > 0 {
                table.first_symbol[length] = k;
                table.min_code[length] = code;
                code += n as i32;
                k += n;
                table.max_code[length] = code - 1;
            }
            code <<= 1;
        }
        table
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Option<u8> {
        let mut code = 0i32;
        for length in 1..=16 {
            code = (code << 1) | i32::from(bits.bit()?);
            if code <= self.max_code[length] {
                let index = self.first_symbol[length] + (code - self.min_code[length]) as usize;
                return self.symbols.get(index).copied();
            }
        }
        None
    }
}

/// The entropy-coded bytes of one scan, bit by bit: stuffed `FF 00` read
/// as `FF`, restart markers consumed where they belong, any other marker
/// (or the end of the file) the end of the data.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    byte: u8,
    left: u8,
    ended: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            byte: 0,
            left: 0,
            ended: false,
        }
    }

    fn bit(&mut self) -> Option<u8> {
        if self.left == 0 {
            if self.ended {
                return None;
            }
            let byte = *self.data.get(self.pos)?;
            if byte == 0xFF {
                match self.data.get(self.pos + 1) {
                    Some(0x00) => self.pos += 2,
                    _ => {
                        self.ended = true;
                        return None;
                    }
                }
            } else {
                self.pos += 1;
            }
            self.byte = byte;
            self.left = 8;
        }
        self.left -= 1;
        Some((self.byte >> self.left) & 1)
    }

    fn skip(&mut self, n: u8) -> Option<()> {
        for _ in 0..n {
            self.bit()?;
        }
        Some(())
    }

    fn receive(&mut self, n: u8) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Some(v)
    }

    /// At a restart interval: drop the padding bits and the `RSTn` marker.
    fn restart(&mut self) -> Option<()> {
        self.left = 0;
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xFF), Some(0xD0..=0xD7)) => {
                self.pos += 2;
                Some(())
            }
            _ => None,
        }
    }

    /// Where the data after this scan starts (its ending marker).
    fn end(&self) -> usize {
        let mut pos = self.pos;
        while pos + 1 < self.data.len() && !(self.data[pos] == 0xFF && self.data[pos + 1] != 0) {
            pos += 1;
        }
        pos
    }
}

#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
}

#[derive(Debug, Default)]
struct Frame {
    width: u32,
    height: u32,
    components: Vec<Component>,
    progressive: bool,
}

/// Walk `jpeg`'s scans and count their blocks.
pub fn check(jpeg: &[u8]) -> Scan {
    walk(jpeg).unwrap_or(Scan::Unknown)
}

fn u16_at(data: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *data.get(at)?,
        *data.get(at + 1)?,
    ])))
}

fn walk(jpeg: &[u8]) -> Option<Scan> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut frame: Option<Frame> = None;
    let mut restart_interval = 0u32;
    let mut pos = 2;
    loop {
        // Markers may be padded with extra FFs.
        while *jpeg.get(pos)? == 0xFF && *jpeg.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        if *jpeg.get(pos)? != 0xFF {
            return None;
        }
        let marker = *jpeg.get(pos + 1)?;
        pos += 2;
        match marker {
            0xD9 => return Some(Scan::Complete), // EOI
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let length = u16_at(jpeg, pos)?;
        let segment = jpeg.get(pos + 2..pos + length)?;
        match marker {
            0xC4 => read_tables(segment, &mut dc, &mut ac)?,
            0xC0..=0xC2 => frame = Some(read_frame(segment, marker == 0xC2)?),
            // Lossless, hierarchical or arithmetic coding: not judged here.
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xDD => restart_interval = u32::try_from(u16_at(segment, 0)?).ok()?,
            0xDA => {
                let frame = frame.as_ref()?;
                let data = jpeg.get(pos + length..)?;
                let (scan, consumed) = walk_scan(segment, data, frame, &dc, &ac, restart_interval)?;
                if let Scan::Truncated { .. } | Scan::Unknown = scan {
                    return Some(scan);
                }
                pos += length + consumed;
                continue;
            }
            _ => {}
        }
        pos += length;
    }
}

fn read_tables(
    mut segment: &[u8],
    dc: &mut [Option<Huffman>; 4],
    ac: &mut [Option<Huffman>; 4],
) -> Option<()> {
    while !segment.is_empty() {
        let class_id = segment[0];
        let counts: [u8; 16] = segment.get(1..17)?.try_into().ok()?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = segment.get(17..17 + total)?.to_vec();
        let table = Some(Huffman::new(&counts, symbols));
        let id = usize::from(class_id & 0x0F);
        match class_id >> 4 {
            0 => *dc.get_mut(id)? = table,
            1 => *ac.get_mut(id)? = table,
            _ => return None,
        }
        segment = &segment[17 + total..];
    }
    Some(())
}

fn read_frame(segment: &[u8], progressive: bool) -> Option<Frame> {
    let height = u32::try_from(u16_at(segment, 1)?).ok()?;
    let width = u32::try_from(u16_at(segment, 3)?).ok()?;
    let count = usize::from(*segment.get(5)?);
    let mut components = Vec::with_capacity(count);
    for i in 0..count {
        let at = 6 + i * 3;
        let sampling = *segment.get(at + 1)?;
        components.push(Component {
            id: *segment.get(at)?,
            h: u32::from(sampling >> 4).max(1),
            v: u32::from(sampling & 0x0F).max(1),
        });
    }
    (width > 0 && height > 0 && !components.is_empty()).then_some(Frame {
        width,
        height,
        components,
        progressive,
    })
}

/// Walk one scan; how it ended and how many bytes of `data` it took.
fn walk_scan(
    header: &[u8],
    data: &[u8],
    frame: &Frame,
    dc: &[Option<Huffman>; 4],
    ac: &[Option<Huffman>; 4],
    restart_interval: u32,
) -> Option<(Scan, usize)> {
    let count = usize::from(*header.first()?);
    let mut members = Vec::with_capacity(count);
    for i in 0..count {
        let id = *header.get(1 + i * 2)?;
        let tables = *header.get(2 + i * 2)?;
        let component = *frame.components.iter().find(|c| c.id == id)?;
        members.push((
            component,
            usize::from(tables >> 4),
            usize::from(tables & 0x0F),
        ));
    }
    let at = 1 + count * 2;
    let (ss, se, approx) = (*header.get(at)?, *header.get(at + 1)?, *header.get(at + 2)?);
    let refinement = approx >> 4 != 0;
    if frame.progressive && refinement {
        // Refinement bits depend on every coefficient so far: not walked.
        let end = Bits::new(data).end();
        return Some((Scan::Complete, end));
    }
    let hmax = frame.components.iter().map(|c| c.h).max()?;
    let vmax = frame.components.iter().map(|c| c.v).max()?;
    // Blocks per MCU and MCUs in the scan (JPEG spec A.2).
    let (units, per_unit): (u64, Vec<(Component, usize, usize, u32)>) = if members.len() == 1 {
        let (c, d, a) = members[0];
        let w = (frame.width * c.h).div_ceil(hmax).div_ceil(8);
        let h = (frame.height * c.v).div_ceil(vmax).div_ceil(8);
        (u64::from(w) * u64::from(h), vec![(c, d, a, 1)])
    } else {
        let w = frame.width.div_ceil(8 * hmax);
        let h = frame.height.div_ceil(8 * vmax);
        let list = members
            .iter()
            .map(|&(c, d, a)| (c, d, a, c.h * c.v))
            .collect();
        (u64::from(w) * u64::from(h), list)
    };
    let blocks_per_unit: u64 = per_unit.iter().map(|p| u64::from(p.3)).sum();
    let expected = units * blocks_per_unit;
    let mut bits = Bits::new(data);
    let mut eobrun = 0u32;
    let mut blocks = 0u64;
    for unit in 0..units {
        if restart_interval > 0 && unit > 0 && unit % u64::from(restart_interval) == 0 {
            eobrun = 0;
            if bits.restart().is_none() {
                return Some((Scan::Truncated { blocks, expected }, bits.end()));
            }
        }
        for &(_, dc_id, ac_id, n) in &per_unit {
            for _ in 0..n {
                let ok = if frame.progressive {
                    progressive_block(&mut bits, dc, ac, dc_id, ac_id, ss, se, &mut eobrun)
                } else {
                    sequential_block(
                        &mut bits,
                        dc.get(dc_id)?.as_ref()?,
                        ac.get(ac_id)?.as_ref()?,
                    )
                };
                if ok.is_none() {
                    return Some((Scan::Truncated { blocks, expected }, bits.end()));
                }
                blocks += 1;
            }
        }
    }
    Some((Scan::Complete, bits.end()))
}

fn sequential_block(bits: &mut Bits<'_>, dc: &Huffman, ac: &Huffman) -> Option<()> {
    let size = dc.decode(bits)?;
    bits.skip(size)?;
    let mut k = 1;
    while k < 64 {
        let rs = ac.decode(bits)?;
        let (run, size) = (rs >> 4, rs & 0x0F);
        if size == 0 {
            if run != 15 {
                break; // end of block
            }
            k += 16;
        } else {
            bits.skip(size)?;
            k += usize::from(run) + 1;
        }
    }
    Some(())
}

/// One block of a progressive first scan: DC (`ss == 0`) or a band of AC
/// coefficients with end-of-band runs.
#[allow(clippy::too_many_arguments)]
fn progressive_block(
    bits: &mut Bits<'_>,
    dc: &[Option<Huffman>; 4],
    ac: &[Option<Huffman>; 4],
    dc_id: usize,
    ac_id: usize,
    ss: u8,
    se: u8,
    eobrun: &mut u32,
) -> Option<()> {
    if ss == 0 {
        let size = dc.get(dc_id)?.as_ref()?.decode(bits)?;
        return bits.skip(size);
    }
    if *eobrun > 0 {
        *eobrun -= 1;
        return Some(());
    }
    let table = ac.get(ac_id)?.as_ref()?;
    let mut k = ss;
    while k <= se {
        let rs = table.decode(bits)?;
        let (run, size) = (rs >> 4, rs & 0x0F);
        if size == 0 {
            if run < 15 {
                *eobrun = (1u32 << run) + bits.receive(run)? - 1;
                break;
            }
            k = k.saturating_add(16);
        } else {
            bits.skip(size)?;
            k = k.saturating_add(run + 1);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use std::io::Cursor;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = crate::drawing::drawn_poster(7, width, height);
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn a_whole_jpeg_is_complete() {
        for (w, h) in [(224, 320), (17, 9), (640, 480)] {
            assert_eq!(check(&jpeg(w, h)), Scan::Complete, "{w}x{h}");
        }
        let thumb =
            crate::vision::thumbnail_jpeg(&crate::drawing::drawn_poster(2, 300, 450), 160).unwrap();
        assert_eq!(check(&thumb), Scan::Complete, "4:2:0 with jpeg-encoder");
    }

    #[test]
    fn a_cut_jpeg_is_truncated_whatever_it_ends_with() {
        let whole = jpeg(224, 320);
        for fraction in [0.3, 0.5, 0.8, 0.95] {
            let cut = (whole.len() as f64 * fraction) as usize;
            let mut bytes = whole[..cut].to_vec();
            assert!(
                matches!(check(&bytes), Scan::Truncated { .. }),
                "cut at {fraction}"
            );
            bytes.extend_from_slice(&[0xFF, 0xD9]);
            match check(&bytes) {
                Scan::Truncated { blocks, expected } => assert!(blocks < expected),
                other => panic!("cut at {fraction} with FF D9: {other:?}"),
            }
        }
    }

    #[test]
    fn progressive_first_scans_are_walked_too() {
        let img = crate::drawing::drawn_poster(4, 224, 320);
        let mut whole = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut whole, 85);
        encoder.set_progressive(true);
        encoder
            .encode(img.as_raw(), 224, 320, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        assert_eq!(check(&whole), Scan::Complete);
        let mut cut = whole[..whole.len() / 2].to_vec();
        cut.extend_from_slice(&[0xFF, 0xD9]);
        assert!(
            matches!(check(&cut), Scan::Truncated { .. }),
            "{:?}",
            check(&cut)
        );
    }

    /// Every real poster is whole: the walk must never refuse a good file.
    #[test]
    fn every_shared_poster_is_complete() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/posters");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!(
                "skipped: {} is absent (the labelled posters)",
                dir.display()
            );
            return;
        };
        let mut checked = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(check(&bytes), Scan::Complete, "{}", path.display());
            checked += 1;
        }
        assert!(
            checked > 1000,
            "only {checked} posters in {}",
            dir.display()
        );
    }

    #[test]
    fn not_a_jpeg_is_unknown() {
        assert_eq!(check(b"GIF89a"), Scan::Unknown);
        assert_eq!(check(&[0xFF, 0xD8]), Scan::Unknown);
        let _ = RgbImage::new(1, 1);
    }
}
