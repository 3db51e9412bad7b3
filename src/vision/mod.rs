//! Turning untrusted image bytes into the backbone's input tensor.
//!
//! Pure functions, no I/O. Every limit is checked from the header before a
//! pixel is allocated, so a decompression bomb (or a header that lies about
//! its size) costs a header parse, not gigabytes; the pixels are decoded
//! into the one RGB buffer that is kept (no second copy); and a
//! [`DecodeBudget`] bounds what all decodes together may hold at once.

use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::sync::{Condvar, Mutex};
mod jpeg_scan;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::errors::DecodeErrors;
use zune_jpeg::JpegDecoder;

/// Limits applied to every decode. Posters are a few hundred pixels to a few
/// thousand on a side; anything larger is refused rather than decoded.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_bytes: usize,
    pub max_width: u32,
    pub max_height: u32,
    /// Width x height at most (the board's `inference.max_pixels`).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_width: 8192,
            max_height: 8192,
            max_pixels: 40_000_000,
        }
    }
}

impl DecodeLimits {
    /// The most memory one decode within these limits can hold: the
    /// decoder's own buffer at 8 bytes a pixel (16-bit RGBA PNG) and the
    /// RGB result.
    pub fn worst_case_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(8 + 3)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("image is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("empty input: no image bytes")]
    Empty,
    #[error("not a recognised image format (JPEG, PNG, WebP, BMP or GIF expected)")]
    UnknownFormat,
    #[error("image is {width}x{height} pixels, over the {max_width}x{max_height} limit")]
    Dimensions {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    #[error(
        "image is {width}x{height} pixels ({megapixels:.1} MP), over this board's \
         {max_megapixels:.1} MP limit (inference.max_pixels)"
    )]
    Pixels {
        width: u32,
        height: u32,
        megapixels: f64,
        max_megapixels: f64,
    },
    #[error("image could not be decoded (truncated or corrupt): {0}")]
    Decode(String),
}

/// How the backbone wants its pixels: `(pixel_0_255 - mean) / std`, NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalisation {
    pub width: u32,
    pub height: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The memory all decodes may hold at once: each decode reserves what its
/// header says it needs before allocating, and waits while others hold the
/// rest. Decodes run on plain threads (workers, cameras), so waiting
/// blocks; a reservation never exceeds the budget (the pixel cap sees to
/// it, and anything larger is clamped to the whole budget).
#[derive(Debug)]
pub struct DecodeBudget {
    total: u64,
    free: Mutex<u64>,
    freed: Condvar,
}

/// Memory reserved from a [`DecodeBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reserved<'a> {
    budget: &'a DecodeBudget,
    bytes: u64,
}

impl DecodeBudget {
    pub fn new(total_bytes: u64) -> Self {
        Self {
            total: total_bytes.max(1),
            free: Mutex::new(total_bytes.max(1)),
            freed: Condvar::new(),
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Reserve `bytes`, waiting for them to be free.
    pub fn reserve(&self, bytes: u64) -> Reserved<'_> {
        let bytes = bytes.min(self.total);
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while *free < bytes {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *free -= bytes;
        Reserved {
            budget: self,
            bytes,
        }
    }

    /// Bytes not reserved now.
    pub fn free(&self) -> u64 {
        *self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut free = self
            .budget
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *free += self.bytes;
        self.budget.freed.notify_all();
    }
}

/// Decode `bytes` into RGB, refusing oversize input and bombs.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, VisionError> {
    decode_within(bytes, limits, None)
}

/// [`decode`], holding the memory it needs from `budget` while it decodes.
pub fn decode_within(
    bytes: &[u8],
    limits: &DecodeLimits,
    budget: Option<&DecodeBudget>,
) -> Result<RgbImage, VisionError> {
    if bytes.is_empty() {
        return Err(VisionError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(VisionError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    match reader.format() {
        None => Err(VisionError::UnknownFormat),
        Some(image::ImageFormat::Jpeg) => decode_jpeg(bytes, limits, budget),
        Some(_) => decode_other(reader, limits, budget),
    }
}

/// Hold `need` bytes of `budget` while decoding; an image that needs more
/// than the whole budget is refused, since it could never fit.
fn reserve(
    budget: Option<&DecodeBudget>,
    need: u64,
    width: u32,
    height: u32,
) -> Result<Option<Reserved<'_>>, VisionError> {
    let Some(budget) = budget else {
        return Ok(None);
    };
    if need > budget.total() {
        return Err(VisionError::Decode(format!(
            "a {width}x{height} image of this kind needs {} MiB to decode, over this board's \
             {} MiB (inference.decode_memory_mb); send it as a smaller JPEG",
            need.div_ceil(1 << 20),
            budget.total() >> 20
        )));
    }
    Ok(Some(budget.reserve(need)))
}

/// Refuse dimensions over the limits, from the header alone.
fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), VisionError> {
    if width > limits.max_width || height > limits.max_height || width == 0 || height == 0 {
        return Err(VisionError::Dimensions {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(VisionError::Pixels {
            width,
            height,
            megapixels: pixels as f64 / 1e6,
            max_megapixels: limits.max_pixels as f64 / 1e6,
        });
    }
    Ok(())
}

/// The fewest bytes a baseline JPEG of this size can take: two bits for
/// each 8x8 block of luma (a DC difference and an end-of-block) with the
/// shortest Huffman codes. A file smaller than that declares more pixels
/// than it holds.
fn jpeg_min_bytes(width: u32, height: u32) -> u64 {
    u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8)) / 4
}

/// JPEGs go to zune-jpeg directly, which writes RGB into the buffer that is
/// kept. Like every decoder it pads data that ends early with grey, so the
/// scans are walked first ([`jpeg_scan`]): half a poster is refused, not
/// classified as if it were whole.
fn decode_jpeg(
    bytes: &[u8],
    limits: &DecodeLimits,
    budget: Option<&DecodeBudget>,
) -> Result<RgbImage, VisionError> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(false)
        .set_max_width(limits.max_width as usize)
        .set_max_height(limits.max_height as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(jpeg_error)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| VisionError::Decode("the JPEG has no frame header".into()))?;
    let (width, height) = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    check_dimensions(width, height, limits)?;
    let need = jpeg_min_bytes(width, height);
    if (bytes.len() as u64) < need {
        return Err(VisionError::Decode(format!(
            "the JPEG declares {width}x{height} pixels, which take at least {need} bytes, \
             and it is {} bytes: truncated or forged",
            bytes.len()
        )));
    }
    if let jpeg_scan::Scan::Truncated { blocks, expected } = jpeg_scan::check(bytes) {
        return Err(VisionError::Decode(format!(
            "truncated JPEG: its data ends after {blocks} of its {expected} blocks"
        )));
    }
    let size = width as usize * height as usize * 3;
    let _held = reserve(budget, size as u64, width, height)?;
    let mut pixels = vec![0u8; size];
    decoder.decode_into(&mut pixels).map_err(jpeg_error)?;
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| VisionError::Decode("the JPEG decoded to the wrong size".into()))
}

fn jpeg_error(err: DecodeErrors) -> VisionError {
    VisionError::Decode(err.to_string())
}

/// PNG, WebP, BMP, GIF through `image`: the header is read once, the
/// decoder's buffer reserved and capped, and the result turned into RGB in
/// place where the layout allows.
fn decode_other(
    reader: ImageReader<Cursor<&[u8]>>,
    limits: &DecodeLimits,
    budget: Option<&DecodeBudget>,
) -> Result<RgbImage, VisionError> {
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let decoded_bytes = decoder.total_bytes();
    let rgb_bytes = u64::from(width) * u64::from(height) * 3;
    let _held = reserve(
        budget,
        decoded_bytes.saturating_add(rgb_bytes),
        width,
        height,
    )?;
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    // The decoder's own buffer, plus slack for its working memory.
    image_limits.max_alloc = Some(decoded_bytes.saturating_add(16 * 1024 * 1024));
    decoder
        .set_limits(image_limits)
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    let image =
        DynamicImage::from_decoder(decoder).map_err(|e| VisionError::Decode(e.to_string()))?;
    into_rgb(image)
}

/// RGB without a second full-size buffer where the pixels allow it: RGB is
/// kept as it is, RGBA is packed in place; other layouts are converted.
fn into_rgb(image: DynamicImage) -> Result<RgbImage, VisionError> {
    match image {
        DynamicImage::ImageRgb8(rgb) => Ok(rgb),
        DynamicImage::ImageRgba8(rgba) => {
            let (width, height) = rgba.dimensions();
            let mut raw = rgba.into_raw();
            let pixels = raw.len() / 4;
            for i in 0..pixels {
                raw.copy_within(i * 4..i * 4 + 3, i * 3);
            }
            // The spare capacity is given back with the image, shortly.
            raw.truncate(pixels * 3);
            RgbImage::from_raw(width, height, raw)
                .ok_or_else(|| VisionError::Decode("the image decoded to the wrong size".into()))
        }
        other => Ok(other.to_rgb8()),
    }
}

/// Resize the whole image (no crop: a poster's title and art both matter).
pub fn resize(image: &RgbImage, norm: &Normalisation) -> RgbImage {
    if image.width() == norm.width && image.height() == norm.height {
        return image.clone();
    }
    image::imageops::resize(image, norm.width, norm.height, FilterType::Triangle)
}

/// Planar, normalised float tensor data for a resized image.
pub fn to_tensor(image: &RgbImage, norm: &Normalisation) -> Vec<f32> {
    let plane = (image.width() * image.height()) as usize;
    let mut out = vec![0f32; plane * 3];
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px.0[c]) - norm.mean[c]) / norm.std[c];
        }
    }
    out
}

/// A small JPEG preview, for the history and the dashboard. A history page
/// shows two dozen of them on a phone, so size matters more than the last
/// bit of quality: quality 70 with 4:2:0 chroma keeps a real poster's
/// 112x160 preview around 5 KB (`image`'s encoder at quality 80 made
/// 10 KB, and a page of history weighed 250 KB).
pub fn thumbnail_jpeg(image: &RgbImage, max_side: u32) -> Result<Vec<u8>, VisionError> {
    // `imageops::thumbnail` resizes to exactly the size asked: the aspect is
    // ours to keep (a poster is taller than wide), and small images stay small.
    let (w, h) = (image.width().max(1), image.height().max(1));
    let scale = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
    let size = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    let thumb = image::imageops::thumbnail(image, size(w), size(h));
    let (Ok(width), Ok(height)) = (u16::try_from(thumb.width()), u16::try_from(thumb.height()))
    else {
        return Err(VisionError::Decode(format!(
            "thumbnail of {}x{} is too large to encode; use a smaller side",
            thumb.width(),
            thumb.height()
        )));
    };
    let mut out = Vec::new();
    // Standard Huffman tables: with jpeg-encoder's optimised ones (0.7.1)
    // zune-jpeg, which `image` decodes with, misread the colours.
    let encoder = jpeg_encoder::Encoder::new(&mut out, THUMBNAIL_QUALITY);
    encoder
        .encode(thumb.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| VisionError::Decode(format!("encoding the thumbnail: {e}")))?;
    Ok(out)
}

const THUMBNAIL_QUALITY: u8 = 70;

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_small_png() {
        let img = decode(&png(30, 40), &DecodeLimits::default()).unwrap();
        assert_eq!((img.width(), img.height()), (30, 40));
    }

    #[test]
    fn refuses_empty_oversize_and_garbage() {
        let limits = DecodeLimits {
            max_bytes: 100,
            ..DecodeLimits::default()
        };
        assert!(matches!(decode(&[], &limits), Err(VisionError::Empty)));
        assert!(matches!(
            decode(&[0u8; 101], &limits),
            Err(VisionError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(b"hello, not an image", &DecodeLimits::default()),
            Err(VisionError::UnknownFormat)
        ));
    }

    #[test]
    fn refuses_a_decompression_bomb_by_its_header() {
        // 20000x20000 declared, a few hundred bytes on the wire.
        let bomb = crate::drawing::png_bomb(20_000, 20_000);
        assert!(matches!(
            decode(&bomb, &DecodeLimits::default()),
            Err(VisionError::Dimensions { .. })
        ));
    }

    #[test]
    fn refuses_a_truncated_jpeg() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 2, 90]));
        let mut jpeg = Vec::new();
        img.write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        let truncated = &jpeg[..jpeg.len() / 2];
        assert!(matches!(
            decode(truncated, &DecodeLimits::default()),
            Err(VisionError::Decode(_))
        ));
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn refuses_a_truncated_jpeg_even_with_its_end_marker_appended() {
        let whole = jpeg(256, 256);
        assert!(decode(&whole, &DecodeLimits::default()).is_ok());
        let mut cut = whole[..whole.len() * 2 / 3].to_vec();
        cut.extend_from_slice(&[0xFF, 0xD9]);
        match decode(&cut, &DecodeLimits::default()) {
            Err(VisionError::Decode(reason)) => assert!(reason.contains("truncated"), "{reason}"),
            other => panic!(
                "a truncated JPEG was accepted: {:?}",
                other.map(|i| i.dimensions())
            ),
        }
    }

    /// The SOF0 marker's height and width, rewritten.
    fn claim_size(jpeg: &mut [u8], width: u16, height: u16) {
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG");
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    }

    #[test]
    fn refuses_a_jpeg_whose_header_claims_more_pixels_than_its_data_holds() {
        let mut lying = jpeg(64, 64);
        claim_size(&mut lying, 8000, 4000);
        let budget = DecodeBudget::new(200 << 20);
        match decode_within(&lying, &DecodeLimits::default(), Some(&budget)) {
            Err(VisionError::Decode(reason)) => {
                assert!(reason.contains("truncated or forged"), "{reason}")
            }
            other => panic!("accepted: {:?}", other.map(|i| i.dimensions())),
        }
        assert_eq!(budget.free(), budget.total(), "nothing was reserved");
    }

    #[test]
    fn refuses_more_pixels_than_the_board_allows_from_the_header() {
        let limits = DecodeLimits {
            max_pixels: 1_000_000,
            ..DecodeLimits::default()
        };
        let bomb = crate::drawing::png_bomb(2000, 2000);
        assert!(matches!(
            decode(&bomb, &limits),
            Err(VisionError::Pixels { .. })
        ));
        assert!(matches!(
            decode(&jpeg(1200, 900), &limits),
            Err(VisionError::Pixels { .. })
        ));
    }

    #[test]
    fn rgba_is_packed_to_rgb_in_place() {
        let rgba = image::RgbaImage::from_fn(5, 3, |x, y| image::Rgba([x as u8, y as u8, 9, 200]));
        let mut png = Vec::new();
        rgba.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let rgb = decode(&png, &DecodeLimits::default()).unwrap();
        assert_eq!(rgb.get_pixel(4, 2).0, [4, 2, 9]);
        assert_eq!(rgb.as_raw().len(), 5 * 3 * 3);
    }

    #[test]
    fn an_image_needing_more_than_the_whole_budget_is_refused() {
        let budget = DecodeBudget::new(1 << 20);
        let big = jpeg(1024, 1024); // 3 MiB of RGB
        assert!(matches!(
            decode_within(&big, &DecodeLimits::default(), Some(&budget)),
            Err(VisionError::Decode(_))
        ));
        assert!(decode_within(&jpeg(256, 256), &DecodeLimits::default(), Some(&budget)).is_ok());
        assert_eq!(budget.free(), budget.total());
    }

    #[test]
    fn the_budget_makes_decodes_wait_for_room() {
        let budget = std::sync::Arc::new(DecodeBudget::new(100));
        let held = budget.reserve(80);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let budget = std::sync::Arc::clone(&budget);
            std::thread::spawn(move || {
                let _got = budget.reserve(50);
                tx.send(()).unwrap();
            })
        };
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err(),
            "50 more do not fit while 80 are held"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
        assert_eq!(budget.free(), 100);
    }

    #[test]
    fn tensor_is_planar_and_normalised() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([255, 0, 128]));
        let norm = Normalisation {
            width: 2,
            height: 1,
            mean: [127.5, 0.0, 128.0],
            std: [127.5, 1.0, 2.0],
        };
        let t = to_tensor(&img, &norm);
        assert_eq!(t, vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn thumbnail_keeps_the_aspect_and_decodes() {
        let poster = crate::drawing::drawn_poster(3, 600, 900);
        let jpeg = thumbnail_jpeg(&poster, 160).unwrap();
        let back = decode(&jpeg, &DecodeLimits::default()).unwrap();
        assert_eq!((back.width(), back.height()), (107, 160));
        // The mean brightness survives the compression.
        let mean = |img: &RgbImage| {
            img.pixels()
                .map(|p| p.0.iter().map(|&c| f64::from(c)).sum::<f64>())
                .sum::<f64>()
                / f64::from(3 * img.width() * img.height())
        };
        let small = image::imageops::thumbnail(&poster, 107, 160);
        let (want, got) = (mean(&small), mean(&back));
        assert!((want - got).abs() < 4.0, "mean {want} vs {got}");
        // Small images are not enlarged.
        let tiny = crate::drawing::drawn_poster(1, 40, 60);
        let back = decode(
            &thumbnail_jpeg(&tiny, 160).unwrap(),
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!((back.width(), back.height()), (40, 60));
    }
}
