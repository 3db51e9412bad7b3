//! Untrusted image bytes (HTTP uploads, MQTT ingest, the watched folder)
//! through the worker's steps before the model: decode within limits and a
//! memory budget, resize and normalise to the backbone's tensor, thumbnail.

#![no_main]

use libfuzzer_sys::fuzz_target;
use marquee::model::manifest::Manifest;
use marquee::vision::{self, DecodeBudget, DecodeLimits, Normalisation};
use std::path::Path;
use std::sync::OnceLock;

/// The production limits with a small pixel cap: every branch is the same,
/// and an input claiming a poster-sized image costs the fuzzer a header
/// parse instead of a 40 MP decode.
const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 1 << 20,
    max_width: 8192,
    max_height: 8192,
    max_pixels: 512 * 512,
};

/// The shipped model's input size and normalisation.
fn norm() -> &'static Normalisation {
    static NORM: OnceLock<Normalisation> = OnceLock::new();
    NORM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        Manifest::load(&dir)
            .expect("models/manifest.json readable")
            .normalisation()
    })
}

fuzz_target!(|data: &[u8]| {
    let norm = norm();
    let budget = DecodeBudget::new(LIMITS.worst_case_bytes());
    let decoded = vision::decode_within(data, &LIMITS, Some(&budget));
    assert_eq!(
        budget.free(),
        budget.total(),
        "the decode gave its memory back"
    );
    let Ok(image) = decoded else { return };

    let (w, h) = image.dimensions();
    assert!(w >= 1 && h >= 1, "{w}x{h} decoded");
    assert!(
        w <= LIMITS.max_width && h <= LIMITS.max_height,
        "{w}x{h} over the side limits"
    );
    assert!(
        u64::from(w) * u64::from(h) <= LIMITS.max_pixels,
        "{w}x{h} over the pixel cap"
    );
    assert_eq!(image.as_raw().len(), w as usize * h as usize * 3);

    let resized = vision::resize(&image, norm);
    assert_eq!(resized.dimensions(), (norm.width, norm.height));
    let tensor = vision::to_tensor(&resized, norm);
    assert_eq!(tensor.len(), (norm.width * norm.height * 3) as usize);
    assert!(
        tensor.iter().all(|v| v.is_finite()),
        "a non-finite input value"
    );

    // The worker only logs a thumbnail failure, but within these limits
    // there is no reason for one.
    let thumb = vision::thumbnail_jpeg(&image, 160);
    assert!(thumb.is_ok(), "thumbnail of {w}x{h}: {thumb:?}");
});
