//! Writes `fuzz/seeds/<target>/`: a few tiny, drawn inputs per target
//! (nothing taken from real posters). Deterministic: running it again
//! rewrites the same bytes.
//!
//!     cargo run --manifest-path fuzz/seedgen/Cargo.toml

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use std::error::Error;
use std::io::Cursor;
use std::path::{Path, PathBuf};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

fn drawn(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 37) as u8, (y * 53) as u8, ((x ^ y) * 29) as u8])
    })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .map_err(|err| format!("encoding a {format:?} seed: {err}"))?;
    Ok(out)
}

fn jpeg(width: u32, height: u32) -> Result<Vec<u8>> {
    encode(
        &DynamicImage::ImageRgb8(drawn(width, height)),
        ImageFormat::Jpeg,
    )
}

fn png(width: u32, height: u32) -> Result<Vec<u8>> {
    encode(
        &DynamicImage::ImageRgb8(drawn(width, height)),
        ImageFormat::Png,
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, bytes))
        .map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(())
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn main() -> Result<()> {
    let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../seeds");

    let dir = seeds.join("image_decode");
    let rgba = RgbaImage::from_fn(5, 3, |x, y| Rgba([x as u8 * 50, y as u8 * 80, 9, 200]));
    let gray16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(6, 4, |x, y| {
        image::Luma([(x * 10_000 + y * 3_000) as u16])
    }));
    write(&dir, "rgb-16x16.jpg", &jpeg(16, 16)?)?;
    write(&dir, "rgb-13x7.jpg", &jpeg(13, 7)?)?;
    write(&dir, "rgb-8x8.png", &png(8, 8)?)?;
    write(
        &dir,
        "rgba-5x3.png",
        &encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png)?,
    )?;
    write(&dir, "gray16-6x4.png", &encode(&gray16, ImageFormat::Png)?)?;
    write(
        &dir,
        "rgba-5x3.gif",
        &encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Gif)?,
    )?;
    write(
        &dir,
        "rgb-4x4.bmp",
        &encode(&DynamicImage::ImageRgb8(drawn(4, 4)), ImageFormat::Bmp)?,
    )?;
    write(
        &dir,
        "rgba-5x3.webp",
        &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::WebP)?,
    )?;

    // Boundary line, chunk seed, stream.
    let dir = seeds.join("mjpeg");
    let frame = jpeg(8, 8)?;
    let len = format!("Content-Length: {}\r\n\r\n", frame.len());
    write(
        &dir,
        "two-parts",
        &cat(&[
            b"frame\n\x07--frame\r\nContent-Type: image/jpeg\r\n",
            len.as_bytes(),
            &frame,
            b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n",
            &frame,
            b"\r\n--frame\r\n",
        ]),
    )?;
    write(
        &dir,
        "dashed-boundary",
        &cat(&[
            b"--myboundary\n\x2a--myboundary\r\ncontent-length: 5\r\n\r\nhello\r\n--myboundary\r\n\r\n",
        ]),
    )?;
    write(
        &dir,
        "oversize-length",
        b"b\n\x01--b\r\nContent-Length: 99999\r\n\r\nxyz",
    )?;

    // Flags, Content-Type line, body.
    let dir = seeds.join("multipart");
    let part = |name: &str, body: &[u8]| {
        cat(&[
            b"--XyZ\r\nContent-Disposition: form-data; name=\"",
            name.as_bytes(),
            b"\"; filename=\"poster.png\"\r\nContent-Type: image/png\r\n\r\n",
            body,
            b"\r\n",
        ])
    };
    let ct = b"multipart/form-data; boundary=XyZ\n";
    write(
        &dir,
        "file-field",
        &cat(&[
            b"\x00",
            ct,
            &part("other", b"x"),
            &part("file", &png(4, 4)?),
            b"--XyZ--\r\n",
        ]),
    )?;
    write(
        &dir,
        "sample-field",
        &cat(&[
            b"\x03",
            ct,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"sample\"\r\n\r\n2\r\n--XyZ--\r\n",
        ]),
    )?;
    write(&dir, "raw-body", &cat(&[b"\x02image/png\n", &png(3, 3)?]))?;
    write(&dir, "no-file", &cat(&[b"\x00", ct, b"--XyZ--\r\n"]))?;

    // Topic byte (even: capture, odd: ingest), payload.
    let dir = seeds.join("mqtt_payloads");
    write(&dir, "capture-empty", b"\x00")?;
    write(&dir, "capture-name", b"\x00 desk\n")?;
    write(&dir, "capture-json", b"\x00{\"camera\": \"door\"}")?;
    write(&dir, "capture-json-null", b"\x00{\"camera\": null}")?;
    write(&dir, "ingest-jpeg", &cat(&[b"\x01", &jpeg(8, 8)?]))?;
    write(&dir, "ingest-png", &cat(&[b"\x01", &png(4, 4)?]))?;

    // TOML file, then NUL and `--set` lines.
    let dir = seeds.join("config");
    let packaged = include_bytes!("../../../systemd/marquee.toml");
    write(&dir, "packaged.toml", packaged)?;
    write(
        &dir,
        "cameras-and-sets",
        b"device_id = \"hall\"\n\n[inference]\nthreads = 2\nmax_pixels = 4000000\n\n\
          [mqtt]\nurl = \"mqtts://broker.lan:8883\"\nusername = \"m\"\npassword = \"p\"\n\n\
          [[camera]]\nname = \"window\"\nsource = \"http://user:pw@192.0.2.40/snapshot.jpg\"\n\
          mode = \"continuous\"\nfps = 10\nroi = [0.2, 0.1, 0.6, 0.8]\nsettle_ms = 700\n\n\
          [[camera]]\nname = \"desk\"\nsource = \"synthetic:demo\"\n\
          \x00http.listen=127.0.0.1:9090\ninference.queue_size=4\ncamera_defaults.fps=5\n",
    )?;
    write(&dir, "empty", b"")?;
    write(&dir, "bad-key", b"[inference]\nthread = 2\n")?;

    let dir = seeds.join("history_query");
    write(&dir, "genre-page", b"genre=Horror&page=2")?;
    write(
        &dir,
        "dates",
        b"from=2023-11-14&to=2023-11-20&min_confidence=0.25&max_confidence=0.9",
    )?;
    write(&dir, "huge-page", b"page=18446744073709551615&per_page=200")?;
    write(&dir, "source", b"source=camera%3Adesk&genre=&per_page=0")?;
    write(
        &dir,
        "poster-id",
        b"c2c8e4e1b5e0a6d4b2f0f0d5e0a3b1c7d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4",
    )?;
    Ok(())
}
