//! MQTT payloads, as the broker delivers them. The first byte picks the
//! topic (modulo 3): 0 is `<prefix>/<device>/capture` (a camera name,
//! nothing, or `{"camera": "NAME"}`), 1 is `.../ingest` (image bytes, which
//! become a poster and are decoded by a worker), 2 is `.../feedback` (a
//! JSON correction, checked against the model's genres; the same text also
//! goes through the CSV import's row parser).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use marquee::feedback;
use marquee::ingest::mqtt::{capture_target, feedback_payload, SOURCE};
use marquee::poster::{Poster, PosterId};
use marquee::vision::{self, DecodeBudget, DecodeLimits};

/// As in `image_decode`: the production limits with a small pixel cap.
const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 1 << 20,
    max_width: 8192,
    max_height: 8192,
    max_pixels: 512 * 512,
};

fuzz_target!(|data: &[u8]| {
    let Some((&topic, payload)) = data.split_first() else {
        return;
    };
    if topic % 3 == 2 {
        let labels: Vec<String> = ["Action", "Comedy", "Drama"].map(String::from).to_vec();
        if let Ok(correction) = feedback_payload(payload) {
            if let Ok(checked) = feedback::check(&labels, correction) {
                assert_eq!(checked.kept, checked.genres.is_empty(), "genres or kept");
                assert!(checked.genres.iter().all(|g| labels.contains(g)));
            }
        }
        if let Ok(text) = std::str::from_utf8(payload) {
            for (line, row) in feedback::parse_import(text) {
                assert!(line >= 1);
                if let Ok(correction) = row {
                    let _ = feedback::check(&labels, correction);
                }
            }
        }
        return;
    }
    if topic % 3 == 0 {
        if let Ok(Some(name)) = capture_target(payload) {
            // A plain name is the payload's text, trimmed: never padded.
            if !payload.trim_ascii_start().starts_with(b"{") {
                assert!(!name.is_empty(), "an empty camera name from {payload:?}");
                assert_eq!(name, name.trim(), "an untrimmed camera name");
            }
        }
        return;
    }
    let poster = Poster::new(Bytes::copy_from_slice(payload), SOURCE);
    let id = PosterId::of_bytes(&poster.bytes);
    assert!(
        PosterId::parse(id.as_str()).is_ok(),
        "{id:?} does not parse back"
    );
    let budget = DecodeBudget::new(LIMITS.worst_case_bytes());
    if let Ok(image) = vision::decode_within(&poster.bytes, &LIMITS, Some(&budget)) {
        let (w, h) = image.dimensions();
        assert!(
            u64::from(w) * u64::from(h) <= LIMITS.max_pixels,
            "{w}x{h} decoded"
        );
    }
    assert_eq!(
        budget.free(),
        budget.total(),
        "the decode gave its memory back"
    );
});
