//! The shipped model on drawn images: runs the real tract backbone and head.

use marquee::drawing::{drawn_poster, drawn_poster_jpeg, encode};
use marquee::model::{default_model_dir, manifest::Manifest, Classifier, ModelError};
use std::path::Path;
use std::sync::OnceLock;

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::load(&default_model_dir(), None).expect("shipped model loads"))
}

#[test]
fn nineteen_calibrated_scores_best_first_with_consistent_tags() {
    let c = classifier();
    for seed in 0..4 {
        let p = c.classify(&drawn_poster_jpeg(seed, 224, 320)).unwrap();
        assert_eq!(p.genres.len(), 19);
        assert!(p.genres.iter().all(|g| (0.0..=1.0).contains(&g.score)));
        assert!(p.genres.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(p.top3, p.genres[..3].to_vec());
        let head = c.head();
        for g in &p.genres {
            let model = head
                .head
                .genres
                .iter()
                .find(|m| m.label == g.label)
                .unwrap();
            assert_eq!(
                p.tags.contains(&g.label),
                g.score >= model.threshold,
                "{}",
                g.label
            );
        }
    }
}

#[test]
fn same_image_same_scores_across_runs_and_formats() {
    let c = classifier();
    let image = drawn_poster(7, 300, 420);
    let a = c
        .classify(&encode(&image, image::ImageFormat::Png))
        .unwrap();
    let b = c
        .classify(&encode(&image, image::ImageFormat::Png))
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_non_image_is_a_clear_error() {
    let err = classifier().classify(b"%PDF-1.4 not a poster").unwrap_err();
    assert!(
        err.to_string().contains("not a recognised image format"),
        "{err}"
    );
}

fn copy_models(to: &Path) {
    for entry in std::fs::read_dir(default_model_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_corrupted_head_is_refused_by_checksum() {
    let dir = tempfile::tempdir().unwrap();
    copy_models(dir.path());
    let manifest = Manifest::load(dir.path()).unwrap();
    let head = dir.path().join(&manifest.head.as_ref().unwrap().file);
    let mut text = std::fs::read_to_string(&head).unwrap();
    text = text.replacen("\"threshold\":", "\"threshold\": ", 1);
    std::fs::write(&head, text).unwrap();
    match Classifier::load(dir.path(), None) {
        Err(ModelError::Manifest(e)) => assert!(e.to_string().contains("checksum mismatch"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a corrupted head loaded"),
    }
}

#[test]
fn a_corrupted_backbone_is_refused_by_checksum() {
    let dir = tempfile::tempdir().unwrap();
    copy_models(dir.path());
    let manifest = Manifest::load(dir.path()).unwrap();
    let (_, v) = manifest.variant(None).unwrap();
    let path = dir.path().join(&v.file);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let err = Classifier::load(dir.path(), None).err().expect("refused");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}

#[test]
fn an_unknown_variant_names_the_known_ones() {
    let err = Classifier::load(&default_model_dir(), Some("fp4"))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("fp4") && text.contains("int8"), "{text}");
}
