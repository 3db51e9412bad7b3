//! How closely two backbone runs agree on the same posters: one file on
//! tract and on onnxruntime, and each variant against tract f32. Part of
//! `marquee bench`'s report.

use serde::Serialize;

use crate::model::{prediction_from_scores, Classifier};

#[derive(Debug, Serialize)]
pub struct Agreement {
    /// `int8-full@onnxruntime`
    pub run: String,
    /// `int8-full` (tract) or `f32`.
    pub against: String,
    pub posters: usize,
    pub cosine_mean: f64,
    pub cosine_min: f64,
    /// Largest difference of one feature.
    pub max_abs_diff: f64,
    /// Largest difference of one calibrated genre score (the shipped head).
    pub max_score_diff: f64,
    /// Posters given exactly the same tags.
    pub same_tags: f64,
}

/// Every onnxruntime run against tract on the same file, and every run that
/// is not tract f32 against tract f32.
pub fn compare(
    loaded: &[(String, Classifier)],
    inputs: &[Vec<u8>],
) -> anyhow::Result<Vec<Agreement>> {
    let find = |key: &str| loaded.iter().find(|(k, _)| k == key).map(|(_, c)| c);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (key, _) in loaded {
        if let Some((variant, _)) = key.split_once('@') {
            if find(variant).is_some() {
                pairs.push((key, variant));
            }
        }
        // Against tract f32, unless that is the pair above already.
        if key != "f32" && !key.starts_with("f32@") && find("f32").is_some() {
            pairs.push((key, "f32"));
        }
    }
    let mut out = Vec::new();
    for (run, against) in pairs {
        let (Some(a), Some(b)) = (find(run), find(against)) else {
            continue;
        };
        out.push(agree(run, a, against, b, inputs)?);
    }
    Ok(out)
}

fn agree(
    run: &str,
    a: &Classifier,
    against: &str,
    b: &Classifier,
    inputs: &[Vec<u8>],
) -> anyhow::Result<Agreement> {
    let (head_a, head_b) = (a.head(), b.head());
    let mut cosines = Vec::with_capacity(inputs.len());
    let (mut max_abs, mut max_score, mut same) = (0f64, 0f64, 0usize);
    for bytes in inputs {
        let (fa, fb) = (a.features(bytes)?, b.features(bytes)?);
        cosines.push(cosine(&fa, &fb));
        for (x, y) in fa.iter().zip(&fb) {
            max_abs = max_abs.max(f64::from((x - y).abs()));
        }
        let (sa, sb) = (head_a.head.scores(&fa), head_b.head.scores(&fb));
        for (x, y) in sa.iter().zip(&sb) {
            max_score = max_score.max(f64::from((x - y).abs()));
        }
        let (pa, pb) = (
            prediction_from_scores(&head_a.head, &sa),
            prediction_from_scores(&head_b.head, &sb),
        );
        same += usize::from(pa.tags == pb.tags);
    }
    let n = cosines.len().max(1) as f64;
    Ok(Agreement {
        run: run.to_string(),
        against: against.to_string(),
        posters: cosines.len(),
        cosine_mean: cosines.iter().sum::<f64>() / n,
        cosine_min: cosines.iter().copied().fold(1.0, f64::min),
        max_abs_diff: max_abs,
        max_score_diff: max_score,
        same_tags: same as f64 / n,
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-12)
}

pub fn print(agreement: &[Agreement]) {
    if agreement.is_empty() {
        return;
    }
    println!(
        "{:<22} {:<10} {:>7} {:>10} {:>10} {:>10} {:>11} {:>9}",
        "features of",
        "against",
        "posters",
        "cos mean",
        "cos min",
        "max |d|",
        "max dscore",
        "same tags"
    );
    for a in agreement {
        println!(
            "{:<22} {:<10} {:>7} {:>10.5} {:>10.5} {:>10.4} {:>11.4} {:>9.3}",
            a.run,
            a.against,
            a.posters,
            a.cosine_mean,
            a.cosine_min,
            a.max_abs_diff,
            a.max_score_diff,
            a.same_tags
        );
    }
}
