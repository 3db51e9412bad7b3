//! tract runs the shipped ONNX graphs as onnxruntime does: features and the
//! kept ImageNet logits of a drawn image, compared with the figures that
//! `tools/check_backbone.py` recorded from onnxruntime.

use marquee::model::{backbone::Backbone, default_model_dir, manifest::Manifest};
use marquee::vision;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

/// `tests/fixtures`, wherever the test runs from.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference-outputs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn tensor_of_fixture(manifest: &Manifest) -> Vec<f32> {
    let name = fixture()["input"].as_str().unwrap().to_string();
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let image = vision::decode(&bytes, &vision::DecodeLimits::default()).unwrap();
    let norm = manifest.normalisation();
    assert_eq!(
        (image.width(), image.height()),
        (norm.width, norm.height),
        "the fixture is drawn at the model's input size: no resize in this check"
    );
    vision::to_tensor(&image, &norm)
}

fn check_variant(name: &str) {
    let dir = default_model_dir();
    let manifest = Manifest::load(&dir).unwrap();
    let reference = &fixture()["variants"][name];
    let (_, variant) = manifest.variant(Some(name)).unwrap();
    assert_eq!(
        reference["sha256"].as_str().unwrap(),
        variant.sha256,
        "the fixture was made for another {name} file: rerun tools/check_backbone.py"
    );
    let bytes = std::fs::read(dir.join(&variant.file)).unwrap();
    let backbone = Backbone::from_onnx_bytes(&bytes, &manifest.backbone).unwrap();
    let tensor = tensor_of_fixture(&manifest);
    let features = backbone.features(tensor.clone()).unwrap();
    check_features(name, &features, "tract");

    // The ImageNet logits: the top-1 class must agree.
    let norm = manifest.normalisation();
    let shape = [1, 3, norm.height as usize, norm.width as usize];
    let logits = logits(&dir.join(&variant.file), &tensor, shape);
    let top1 = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    let ref_top1 = reference["top5_indices"][0].as_u64().unwrap() as usize;
    assert_eq!(
        top1, ref_top1,
        "{name}: ImageNet top-1 differs from onnxruntime"
    );
}

/// A runtime's features of the drawn fixture against what onnxruntime (in
/// Python) recorded for variant `name`, within the fixture's tolerances.
pub fn check_features(name: &str, features: &[f32], runtime: &str) {
    let reference = &fixture()["variants"][name];
    let tol = &fixture()["tolerance_hint"][name];
    let abs_tol = tol["features_abs"].as_f64().unwrap() as f32;
    let first16: Vec<f32> = reference["features_first16"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    for (k, (a, b)) in features.iter().zip(&first16).enumerate() {
        assert!(
            (a - b).abs() <= abs_tol,
            "{name} feature {k}: {runtime} {a}, reference {b}"
        );
    }
    let l2: f32 = features.iter().map(|v| v * v).sum::<f32>().sqrt();
    let ref_l2 = reference["features_l2"].as_f64().unwrap() as f32;
    let rel = tol["features_l2_rel"].as_f64().unwrap() as f32;
    assert!(
        (l2 - ref_l2).abs() / ref_l2 <= rel,
        "{name} L2: {runtime} {l2}, reference {ref_l2}"
    );
}

fn logits(path: &Path, tensor: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_outputs_by_name(["logits"])
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = Tensor::from_shape(&shape, tensor).unwrap();
    let out = model.run(tvec!(input.into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn f32_backbone_matches_onnxruntime() {
    check_variant("f32");
}

#[test]
fn int8_backbone_matches_onnxruntime() {
    check_variant("int8");
}

/// The all-QLinearConv file is onnxruntime's: tract refuses it at load
/// (its lowering of that graph overflows) instead of running it wrong.
#[test]
fn tract_refuses_the_file_made_for_onnxruntime() {
    let err = marquee::model::Classifier::load(&default_model_dir(), Some("int8-full"))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("made for onnxruntime only"), "{err}");
}
