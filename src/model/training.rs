//! Training the genre head with linfa: one L2-regularised logistic model per
//! genre on standardised backbone features, positives re-weighted (by
//! replication, as linfa-logistic takes no sample weights) against class
//! imbalance, then Platt calibration and an F1-optimal threshold per genre,
//! both fitted on the calibration split that the logistic models never saw.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};

use super::evaluation::best_threshold;
use super::head::{sigmoid, GenreHead, GenreModel, HEAD_FORMAT};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training posters with features")]
    Empty,
    #[error(
        "genre {0} has no positive or no negative poster in the {1} split; it cannot be learned"
    )]
    Degenerate(String, &'static str),
    #[error("fitting {0} failed: {1}")]
    Fit(String, String),
    #[error("the fit was cancelled")]
    Cancelled,
    #[error("the head to start from does not fit: {0}")]
    WarmStart(String),
}

/// How a fit is steered from outside: where it starts, whether to stop,
/// how far it got.
#[derive(Default)]
pub struct FitControl<'a> {
    /// Start from this head's weights and keep its standardisation, so a
    /// retrain needs far fewer iterations; a genre the new data cannot
    /// learn (no positive in a split) keeps this head's model.
    pub warm: Option<&'a GenreHead>,
    /// Set to stop between genres.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
    /// Genres finished so far.
    pub done: Option<&'a std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainConfig {
    /// L2 strength (linfa's `alpha`, on a summed loss over standardised features).
    pub alpha: f64,
    /// Positives are weighted up to `negatives / positives`, capped here.
    pub max_positive_weight: usize,
    pub max_iterations: u64,
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            alpha: 3000.0,
            max_positive_weight: 8,
            max_iterations: 100,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Features and ground truth for one split.
pub struct Split<'a> {
    pub features: &'a [Vec<f32>],
    pub truth: &'a [Vec<bool>],
}

pub fn train_head(
    labels: &[String],
    train: &Split,
    calibration: &Split,
    cfg: &TrainConfig,
) -> Result<GenreHead, TrainError> {
    train_head_with(labels, train, calibration, cfg, &FitControl::default())
}

pub fn train_head_with(
    labels: &[String],
    train: &Split,
    calibration: &Split,
    cfg: &TrainConfig,
    control: &FitControl,
) -> Result<GenreHead, TrainError> {
    use std::sync::atomic::Ordering;
    let dim = train.features.first().ok_or(TrainError::Empty)?.len();
    // A genre the warm head does not know (one an operator added) starts
    // from zero.
    let warm_models: Option<Vec<Option<&GenreModel>>> = match control.warm {
        Some(w) => {
            if w.feature_dim != dim {
                return Err(TrainError::WarmStart(format!(
                    "it takes {} features, the data has {dim}",
                    w.feature_dim
                )));
            }
            Some(
                labels
                    .iter()
                    .map(|l| w.genres.iter().find(|g| &g.label == l))
                    .collect(),
            )
        }
        None => None,
    };
    let (mean, std) = match control.warm {
        Some(w) => (w.feature_mean.clone(), w.feature_std.clone()),
        None => standardisation(train.features, dim),
    };
    let x_train = standardise(train.features, &mean, &std);
    let x_cal = standardise(calibration.features, &mean, &std);
    let jobs: Vec<usize> = (0..labels.len()).collect();
    type Fitted = Option<Result<GenreModel, TrainError>>;
    let results: std::sync::Mutex<Vec<Fitted>> =
        std::sync::Mutex::new((0..labels.len()).map(|_| None).collect());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..cfg.threads.max(1) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&j) = jobs.get(k) else { break };
                if control.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    break;
                }
                let y_train: Vec<bool> = train.truth.iter().map(|t| t[j]).collect();
                let y_cal: Vec<bool> = calibration.truth.iter().map(|t| t[j]).collect();
                let warm = warm_models.as_ref().and_then(|m| m[j]);
                let fitted =
                    match fit_genre(&labels[j], &x_train, &y_train, &x_cal, &y_cal, cfg, warm) {
                        Err(TrainError::Degenerate(..)) if warm.is_some() => Ok(warm
                            .cloned()
                            .unwrap_or_else(|| unreachable_model(&labels[j]))),
                        other => other,
                    };
                if let Ok(mut r) = results.lock() {
                    r[j] = Some(fitted);
                }
                if let Some(done) = control.done {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    if control.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(TrainError::Cancelled);
    }
    let genres = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .zip(labels)
        .map(|(r, l)| r.unwrap_or_else(|| Err(TrainError::Fit(l.clone(), "not run".into()))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut head = GenreHead {
        format: HEAD_FORMAT,
        trained_on_backbone: String::new(),
        feature_dim: dim,
        feature_mean: mean,
        feature_std: std,
        genres,
        provenance: serde_json::Value::Null,
        metrics: serde_json::Value::Null,
        seen_ids: Vec::new(),
    };
    // Per-genre F1 thresholds let weak rare genres tag too freely; refine them
    // jointly for micro-F1 (what a subscriber sees across all tags).
    let cal_scores: Vec<Vec<f32>> = calibration
        .features
        .iter()
        .map(|f| head.scores(f))
        .collect();
    let start: Vec<f32> = head.genres.iter().map(|g| g.threshold).collect();
    let tuned = tune_micro_thresholds(&cal_scores, calibration.truth, start);
    for (g, t) in head.genres.iter_mut().zip(tuned) {
        g.threshold = t;
    }
    Ok(head)
}

/// Coordinate ascent on micro-F1 over the calibration split: each genre's
/// threshold in turn moves to the grid value that maximises micro-F1 with
/// the others fixed. Two passes settle it; ties keep the lower threshold.
pub fn tune_micro_thresholds(
    scores: &[Vec<f32>],
    truth: &[Vec<bool>],
    mut th: Vec<f32>,
) -> Vec<f32> {
    let g = th.len();
    let counts = |th: &[f32]| {
        let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
        for (s, t) in scores.iter().zip(truth) {
            for j in 0..g {
                match (s[j] >= th[j], t[j]) {
                    (true, true) => tp += 1,
                    (true, false) => fp += 1,
                    (false, true) => fn_ += 1,
                    _ => {}
                }
            }
        }
        2.0 * tp as f64 / ((2 * tp + fp + fn_).max(1)) as f64
    };
    for _ in 0..2 {
        for j in 0..g {
            let mut best = (counts(&th), th[j]);
            for step in 1..100 {
                let candidate = step as f32 / 100.0;
                let mut trial = th.clone();
                trial[j] = candidate;
                let f = counts(&trial);
                if f > best.0 + 1e-12 {
                    best = (f, candidate);
                }
            }
            th[j] = best.1;
        }
    }
    th
}

/// Never used: `warm` is `Some` where this is called. Keeps the match total
/// without a panic.
fn unreachable_model(label: &str) -> GenreModel {
    GenreModel {
        label: label.to_string(),
        bias: 0.0,
        weights: Vec::new(),
        platt_a: 1.0,
        platt_b: 0.0,
        threshold: 1.0,
    }
}

fn fit_genre(
    label: &str,
    x_train: &Array2<f64>,
    y_train: &[bool],
    x_cal: &Array2<f64>,
    y_cal: &[bool],
    cfg: &TrainConfig,
    warm: Option<&GenreModel>,
) -> Result<GenreModel, TrainError> {
    let pos: Vec<usize> = (0..y_train.len()).filter(|&i| y_train[i]).collect();
    let neg = y_train.len() - pos.len();
    if pos.is_empty() || neg == 0 {
        return Err(TrainError::Degenerate(label.to_string(), "training"));
    }
    if !y_cal.iter().any(|&t| t) || y_cal.iter().all(|&t| t) {
        return Err(TrainError::Degenerate(label.to_string(), "calibration"));
    }
    let weight = (neg / pos.len()).clamp(1, cfg.max_positive_weight.max(1));
    let mut rows: Vec<usize> = (0..y_train.len()).collect();
    for _ in 1..weight {
        rows.extend_from_slice(&pos);
    }
    // Weighted: a copy with the positives repeated. Unweighted: the shared
    // matrix itself, so a fitting thread holds no copy of it.
    let weighted = (weight > 1).then(|| x_train.select(ndarray::Axis(0), &rows));
    let x = weighted
        .as_ref()
        .map_or_else(|| x_train.view(), |x| x.view());
    let y: Array1<bool> = rows.iter().map(|&i| y_train[i]).collect();
    let mut solver = LogisticRegression::default()
        .alpha(cfg.alpha)
        .max_iterations(cfg.max_iterations);
    if let Some(w) = warm {
        // linfa's parameters are the log-odds of its larger class, then the
        // intercept; the head keeps the log-odds of `true`.
        let trues = y.iter().filter(|&&t| t).count();
        let falses = y.len() - trues;
        let true_is_larger = trues > falses || (trues == falses && y.first() == Some(&true));
        let sign = if true_is_larger { 1.0 } else { -1.0 };
        let init: Array1<f64> = w
            .weights
            .iter()
            .map(|&v| sign * f64::from(v))
            .chain(std::iter::once(sign * f64::from(w.bias)))
            .collect();
        solver = solver.initial_params(init);
    }
    let model = solver
        .fit(&linfa::DatasetBase::new(x, y))
        .map_err(|e| TrainError::Fit(label.to_string(), e.to_string()))?;
    drop(weighted);
    let (w, b) = oriented(&model);
    let logits: Array1<f64> = x_cal.dot(&w) + b;
    let (platt_a, platt_b) = platt(label, &logits, y_cal)?;
    let calibrated: Vec<f32> = logits
        .iter()
        .map(|&z| sigmoid((platt_a * z + platt_b) as f32))
        .collect();
    Ok(GenreModel {
        label: label.to_string(),
        bias: b as f32,
        weights: w.iter().map(|&v| v as f32).collect(),
        platt_a: platt_a as f32,
        platt_b: platt_b as f32,
        threshold: best_threshold(&calibrated, y_cal),
    })
}

/// Weights and intercept of the logit of `true`. linfa-logistic models the
/// log-odds of its *larger* class, which for a rare genre is `false`.
fn oriented(model: &linfa_logistic::FittedLogisticRegression<f64, bool>) -> (Array1<f64>, f64) {
    if model.labels().pos.class {
        (model.params().clone(), model.intercept())
    } else {
        (-model.params(), -model.intercept())
    }
}

/// Platt scaling: a one-feature logistic regression from raw logit to truth.
fn platt(label: &str, logits: &Array1<f64>, truth: &[bool]) -> Result<(f64, f64), TrainError> {
    let x = logits.clone().insert_axis(ndarray::Axis(1));
    let y: Array1<bool> = truth.iter().copied().collect();
    let model = LogisticRegression::default()
        .alpha(1e-3)
        .max_iterations(200)
        .fit(&Dataset::new(x, y))
        .map_err(|e| TrainError::Fit(format!("{label} calibration"), e.to_string()))?;
    let (w, b) = oriented(&model);
    let a = w[0];
    // A non-increasing map would invert the ranking; keep the raw logit then.
    if a.is_finite() && a > 0.0 {
        Ok((a, b))
    } else {
        Ok((1.0, 0.0))
    }
}

fn standardisation(features: &[Vec<f32>], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = features.len().max(1) as f64;
    let mut mean = vec![0f64; dim];
    for f in features {
        for (m, v) in mean.iter_mut().zip(f) {
            *m += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; dim];
    for f in features {
        for ((s, v), m) in var.iter_mut().zip(f).zip(&mean) {
            *s += (f64::from(*v) - m).powi(2);
        }
    }
    // A feature that never varies gets std 1 so it contributes nothing and
    // divides by nothing.
    let std = var
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-6 {
                sd as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

fn standardise(features: &[Vec<f32>], mean: &[f32], std: &[f32]) -> Array2<f64> {
    let dim = mean.len();
    let mut x = Array2::<f64>::zeros((features.len(), dim));
    for (mut row, f) in x.rows_mut().into_iter().zip(features) {
        for (k, v) in row.iter_mut().enumerate() {
            *v = f64::from((f[k] - mean[k]) / std[k]);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_thresholds_silence_a_genre_that_only_adds_false_positives() {
        // Genre 0 is predictable; genre 1's scores carry no information.
        let scores: Vec<Vec<f32>> = (0..40)
            .map(|i| vec![if i % 2 == 0 { 0.9 } else { 0.1 }, 0.6])
            .collect();
        let truth: Vec<Vec<bool>> = (0..40).map(|i| vec![i % 2 == 0, i % 10 == 0]).collect();
        let th = tune_micro_thresholds(&scores, &truth, vec![0.5, 0.5]);
        assert!(th[0] > 0.1 && th[0] <= 0.9, "{th:?}");
        assert!(th[1] > 0.6, "the noisy genre should stop tagging: {th:?}");
    }

    #[test]
    fn learns_a_separable_toy_problem_and_calibrates() {
        // Genre A fires on feature 0, genre B on feature 1.
        let mut features = Vec::new();
        let mut truth = Vec::new();
        for i in 0..200 {
            let a = i % 2 == 0;
            let b = i % 3 == 0;
            let noise = (i as f32 * 0.37).sin() * 0.3;
            features.push(vec![
                if a { 2.0 } else { 0.0 } + noise,
                if b { 2.0 } else { 0.0 } - noise,
                noise,
            ]);
            truth.push(vec![a, b]);
        }
        let labels = vec!["A".to_string(), "B".to_string()];
        let (tr_f, cal_f) = features.split_at(140);
        let (tr_t, cal_t) = truth.split_at(140);
        let head = train_head(
            &labels,
            &Split {
                features: tr_f,
                truth: tr_t,
            },
            &Split {
                features: cal_f,
                truth: cal_t,
            },
            &TrainConfig {
                alpha: 1.0,
                threads: 2,
                ..TrainConfig::default()
            },
        )
        .unwrap();
        head.validate().unwrap();
        let s = head.scores(&[2.0, 0.0, 0.0]);
        assert!(s[0] > 0.8 && s[1] < 0.2, "{s:?}");
        // Deterministic: the same data gives the same head.
        let again = train_head(
            &labels,
            &Split {
                features: tr_f,
                truth: tr_t,
            },
            &Split {
                features: cal_f,
                truth: cal_t,
            },
            &TrainConfig {
                alpha: 1.0,
                threads: 1,
                ..TrainConfig::default()
            },
        )
        .unwrap();
        assert_eq!(head.genres[0].weights, again.genres[0].weights);
    }
}
