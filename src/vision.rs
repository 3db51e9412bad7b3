//! Turning untrusted image bytes into the backbone's input tensor.
//!
//! Pure functions, no I/O: every limit is checked before the pixels are
//! allocated, so a decompression bomb costs a header parse, not gigabytes.

use image::{imageops::FilterType, DynamicImage, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// Limits applied to every decode. Posters are a few hundred pixels to a few
/// thousand on a side; anything larger is refused rather than decoded.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_bytes: usize,
    pub max_width: u32,
    pub max_height: u32,
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_width: 8192,
            max_height: 8192,
            max_alloc: 256 * 1024 * 1024,
        }
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

/// Decode `bytes` into RGB, refusing oversize input and bombs.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, VisionError> {
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
        None => return Err(VisionError::UnknownFormat),
        // The JPEG decoder pads a cut-off scan with grey instead of failing,
        // which would classify half a poster as if it were whole.
        Some(image::ImageFormat::Jpeg) if !has_jpeg_end_marker(bytes) => {
            return Err(VisionError::Decode(
                "truncated JPEG: no end-of-image marker".into(),
            ))
        }
        Some(_) => {}
    }
    // Check the header's dimensions first: a bomb declares them honestly.
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    if width > limits.max_width || height > limits.max_height || width == 0 || height == 0 {
        return Err(VisionError::Dimensions {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let image: DynamicImage = reader
        .decode()
        .map_err(|e| VisionError::Decode(e.to_string()))?;
    Ok(image.to_rgb8())
}

/// A complete JPEG ends with FF D9; some writers append a little padding.
fn has_jpeg_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
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
