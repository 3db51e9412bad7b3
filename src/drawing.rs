//! Drawn test images: shapes and gradients, never real posters, so tests and
//! benchmarks run on any clone.

use image::{Rgb, RgbImage};
use std::io::Cursor;

/// A deterministic poster-like picture: a gradient field, a block of "title"
/// bars and a disc, varied by `seed`.
pub fn drawn_poster(seed: u32, width: u32, height: u32) -> RgbImage {
    let s = seed.wrapping_mul(2654435761);
    let base = [
        (s & 0xff) as u8,
        ((s >> 8) & 0xff) as u8,
        ((s >> 16) & 0xff) as u8,
    ];
    let (cx, cy) = (width as i64 / 2 + (s % 40) as i64 - 20, height as i64 / 2);
    let radius = (width.min(height) / 4) as i64;
    RgbImage::from_fn(width, height, |x, y| {
        let (xi, yi) = (x as i64, y as i64);
        if y > height / 12
            && y < height / 6
            && x > width / 8
            && x < width * 7 / 8
            && (x / 9) % 2 == 0
        {
            return Rgb([240, 240, 230]);
        }
        if (xi - cx).pow(2) + (yi - cy).pow(2) < radius.pow(2) {
            return Rgb([base[2], base[0], 255 - base[1]]);
        }
        let gx = (x * 255 / width.max(1)) as u8;
        let gy = (y * 255 / height.max(1)) as u8;
        Rgb([
            base[0] / 2 + gx / 2,
            base[1] / 2 + gy / 2,
            base[2] / 3 + gx / 3,
        ])
    })
}

pub fn encode(image: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing an in-memory RGB image to a Vec cannot fail for JPEG/PNG.
    let _ = image.write_to(&mut Cursor::new(&mut out), format);
    out
}

pub fn drawn_poster_jpeg(seed: u32, width: u32, height: u32) -> Vec<u8> {
    encode(&drawn_poster(seed, width, height), image::ImageFormat::Jpeg)
}

/// A small PNG whose header declares `width` x `height` pixels: the shape of
/// a decompression bomb, for tests of the decode limits. The header's CRC is
/// valid, so only the declared size can get it refused.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&drawn_poster(1, 8, 8), image::ImageFormat::Png);
    // IHDR: length (8..12), type (12..16), width (16..20), height (20..24), CRC (29..33).
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// CRC-32/ISO-HDLC, as PNG chunks use.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
