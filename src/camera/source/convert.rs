//! Raw V4L2 pixel layouts to RGB: what a USB camera delivers when it is not
//! MJPEG. Pure functions, tested without a device.

use super::{FrameData, SourceError};
use bytes::Bytes;
use image::RgbImage;
use std::sync::Arc;

/// The layouts a UVC camera commonly offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Compressed: kept as it is, decoded only when needed.
    Mjpeg,
    /// YUV 4:2:2 interleaved, `Y0 U Y1 V`: the uncompressed default of UVC.
    Yuyv,
    /// YUV 4:2:0: a Y plane, then interleaved U V at half resolution.
    Nv12,
    /// 8-bit luminance.
    Gray,
    /// Packed RGB.
    Rgb,
    /// Packed BGR.
    Bgr,
}

/// The frame for `bytes` of `layout`, checking the size matches.
pub fn to_frame_data(
    layout: Layout,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<FrameData, SourceError> {
    let pixels = width as usize * height as usize;
    let need = match layout {
        Layout::Mjpeg => return Ok(FrameData::Jpeg(Bytes::copy_from_slice(bytes))),
        Layout::Yuyv => pixels * 2,
        Layout::Nv12 => pixels + pixels / 2,
        Layout::Gray => pixels,
        Layout::Rgb | Layout::Bgr => pixels * 3,
    };
    if bytes.len() < need || width == 0 || height == 0 {
        return Err(SourceError::BadFrame(format!(
            "a {layout:?} frame of {width}x{height} needs {need} bytes, the camera sent {}",
            bytes.len()
        )));
    }
    let mut rgb = vec![0u8; pixels * 3];
    match layout {
        Layout::Mjpeg => {}
        Layout::Yuyv => {
            for (quad, out) in bytes[..need].chunks_exact(4).zip(rgb.chunks_exact_mut(6)) {
                let (u, v) = (quad[1], quad[3]);
                out[..3].copy_from_slice(&yuv(quad[0], u, v));
                out[3..].copy_from_slice(&yuv(quad[2], u, v));
            }
        }
        Layout::Nv12 => {
            let (w, h) = (width as usize, height as usize);
            let (luma, chroma) = bytes.split_at(pixels);
            for y in 0..h {
                for x in 0..w {
                    let c = (y / 2) * w + (x / 2) * 2;
                    let (u, v) = (
                        chroma.get(c).copied().unwrap_or(128),
                        chroma.get(c + 1).copied().unwrap_or(128),
                    );
                    let i = y * w + x;
                    rgb[i * 3..i * 3 + 3].copy_from_slice(&yuv(luma[i], u, v));
                }
            }
        }
        Layout::Gray => {
            for (g, out) in bytes[..need].iter().zip(rgb.chunks_exact_mut(3)) {
                out.fill(*g);
            }
        }
        Layout::Rgb => rgb.copy_from_slice(&bytes[..need]),
        Layout::Bgr => {
            for (bgr, out) in bytes[..need].chunks_exact(3).zip(rgb.chunks_exact_mut(3)) {
                out.copy_from_slice(&[bgr[2], bgr[1], bgr[0]]);
            }
        }
    }
    RgbImage::from_raw(width, height, rgb)
        .map(|image| FrameData::Rgb(Arc::new(image)))
        .ok_or_else(|| SourceError::BadFrame(format!("a {width}x{height} frame has no pixels")))
}

/// BT.601 limited range, in integers.
fn yuv(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = i32::from(y) - 16;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(298 * c + 409 * e),
        clamp(298 * c - 100 * d - 208 * e),
        clamp(298 * c + 516 * d),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(data: FrameData) -> Arc<RgbImage> {
        match data {
            FrameData::Rgb(image) => image,
            FrameData::Jpeg(_) => panic!("expected RGB"),
        }
    }

    #[test]
    fn yuyv_white_black_and_red() {
        // Two pixels per quad: white + black, then two reds.
        let frame = [235, 128, 16, 128, 81, 90, 81, 240];
        let image = rgb(to_frame_data(Layout::Yuyv, 2, 2, &frame).unwrap());
        assert_eq!(image.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(image.get_pixel(1, 0).0, [0, 0, 0]);
        let red = image.get_pixel(0, 1).0;
        assert!(red[0] > 240 && red[1] < 10 && red[2] < 10, "{red:?}");
    }

    #[test]
    fn nv12_gray_and_rgb_layouts() {
        let nv12 = [235, 235, 16, 16, 128, 128];
        let image = rgb(to_frame_data(Layout::Nv12, 2, 2, &nv12).unwrap());
        assert_eq!(image.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(image.get_pixel(1, 1).0, [0, 0, 0]);
        let gray = rgb(to_frame_data(Layout::Gray, 2, 1, &[7, 9]).unwrap());
        assert_eq!(gray.get_pixel(1, 0).0, [9, 9, 9]);
        let packed = rgb(to_frame_data(Layout::Rgb, 1, 1, &[1, 2, 3]).unwrap());
        assert_eq!(packed.get_pixel(0, 0).0, [1, 2, 3]);
        let swapped = rgb(to_frame_data(Layout::Bgr, 1, 1, &[1, 2, 3]).unwrap());
        assert_eq!(swapped.get_pixel(0, 0).0, [3, 2, 1]);
    }

    #[test]
    fn short_frames_are_bad_frames() {
        assert!(matches!(
            to_frame_data(Layout::Yuyv, 640, 480, &[0; 100]),
            Err(SourceError::BadFrame(_))
        ));
        assert!(matches!(
            to_frame_data(Layout::Mjpeg, 640, 480, &[0xFF, 0xD8]),
            Ok(FrameData::Jpeg(_))
        ));
    }
}
