//! One retrain: corrected posters (their stored features, the genres a
//! person gave them) plus what the device keeps of the shipped training set,
//! fitted by linfa from the active head's weights, then judged against the
//! active head on corrections neither saw.
//!
//! The corrections are split by a hash of the poster id, like the shipped
//! data: 70% fit the logistic models, 15% refit calibration and thresholds
//! (with as many shipped calibration posters, so the thresholds suit both
//! kinds of poster), 15% are held out and only measured. A poster keeps its
//! part from one retrain to the next, so a held-out poster never leaks into
//! a later fit.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::base::BaseSet;
use super::genres::{MAX_GENRES, MIN_EXAMPLES};
use crate::model::evaluation::{self, GenreMetrics, Summary};
use crate::model::head::GenreHead;
use crate::model::training::{self, FitControl, TrainConfig, TrainError};
use crate::offline::dataset::{split_of, Split};

/// How a retrain weighs and bounds its data.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainConfig {
    /// Each training correction counts this many times against one shipped
    /// poster: the operator's own posters are what the retrain is for.
    pub correction_weight: usize,
    /// Each calibration correction counts this many times against one
    /// shipped calibration poster when Platt and the thresholds are refitted:
    /// the thresholds should suit the operator's posters first, while the
    /// shipped calibration posters keep them sane for the rest.
    pub calibration_weight: usize,
    /// Iterations per genre from the warm start (the shipped fit's 100 start
    /// from zero).
    pub max_iterations: u64,
    /// Shipped training posters used at most (a sample, spread by id).
    pub max_base_posters: usize,
    pub threads: usize,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            correction_weight: 2,
            calibration_weight: 3,
            max_iterations: 30,
            max_base_posters: 4000,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A corrected poster: id, the genres a person gave it, its features.
pub type CorrectedPoster = (String, Vec<String>, Vec<f32>);

/// Held-out figures of one head.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    pub summary: Summary,
    pub per_genre: Vec<GenreMetrics>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Held-out corrections both heads were scored on.
    pub held_out: usize,
    pub candidate: Option<HeldOut>,
    pub parent: Option<HeldOut>,
}

impl Comparison {
    /// Whether the candidate is worse than its parent on the held-out
    /// corrections (micro-F1; hit@1 breaks a tie). No held-out posters: not
    /// known to be worse.
    pub fn candidate_worse(&self) -> bool {
        match (&self.candidate, &self.parent) {
            (Some(c), Some(p)) => {
                c.summary.micro_f1 + 1e-9 < p.summary.micro_f1
                    || ((c.summary.micro_f1 - p.summary.micro_f1).abs() <= 1e-9
                        && c.summary.hit_at_1 + 1e-9 < p.summary.hit_at_1)
            }
            _ => false,
        }
    }
}

pub struct Retrained {
    pub head: GenreHead,
    pub corrections: usize,
    pub base_posters: usize,
    pub comparison: Comparison,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error(
        "only {0} corrected posters have stored features: correct more posters first \
         (at least {MIN_CORRECTIONS})"
    )]
    TooFew(usize),
    #[error(transparent)]
    Fit(#[from] TrainError),
}

/// Below this, a retrain has nothing to learn from.
pub const MIN_CORRECTIONS: usize = 10;

/// Which part of the corrections a poster is in (see the module docs).
pub fn part_of(poster_id: &str) -> Split {
    split_of(poster_id, LEARNING_SEED)
}

/// Another seed than the shipped split's, since poster ids here are image
/// hashes, not the labelled set's ids.
const LEARNING_SEED: u64 = 11;

/// Takes the corrections and the base posters by value: their features
/// move into the fit instead of being copied (memory).
pub fn retrain(
    parent: &GenreHead,
    corrections: Vec<CorrectedPoster>,
    base: Option<BaseSet>,
    extra_genres: &[String],
    cfg: &RetrainConfig,
    cancel: &AtomicBool,
    done: &AtomicUsize,
) -> Result<Retrained, RetrainError> {
    let started = std::time::Instant::now();
    if corrections.len() < MIN_CORRECTIONS {
        return Err(RetrainError::TooFew(corrections.len()));
    }
    let (labels, postponed) = learnable_labels(parent, &corrections, extra_genres, base.is_some());
    let total_corrections = corrections.len();
    let truth_of =
        |genres: &[String]| -> Vec<bool> { labels.iter().map(|l| genres.contains(l)).collect() };
    let mut train = (Vec::new(), Vec::new());
    let mut cal = (Vec::new(), Vec::new());
    let mut held = Vec::new();
    let mut held_genres = Vec::new();
    for (id, genres, features) in corrections {
        let truth = truth_of(&genres);
        match part_of(&id) {
            Split::Train => {
                for _ in 1..cfg.correction_weight.max(1) {
                    train.0.push(features.clone());
                    train.1.push(truth.clone());
                }
                train.0.push(features);
                train.1.push(truth);
            }
            Split::Calibration => {
                for _ in 1..cfg.calibration_weight.max(1) {
                    cal.0.push(features.clone());
                    cal.1.push(truth.clone());
                }
                cal.0.push(features);
                cal.1.push(truth);
            }
            Split::Validation => {
                held.push(features);
                held_genres.push(genres);
            }
        }
    }
    let trained_corrections = train.0.len() / cfg.correction_weight.max(1);
    let mut base_posters = 0;
    if let Some(base) = base {
        // The base posters' genres, by name: a genre added here is one no
        // base poster is known to have.
        let index: Vec<Option<usize>> = labels
            .iter()
            .map(|l| base.labels.iter().position(|b| b == l))
            .collect();
        let map =
            |t: &[bool]| -> Vec<bool> { index.iter().map(|i| i.is_some_and(|i| t[i])).collect() };
        let step = base
            .train
            .len()
            .div_ceil(cfg.max_base_posters.max(1))
            .max(1);
        for (f, t) in base.train.iter().step_by(step) {
            train.0.push(f.clone());
            train.1.push(map(t));
            base_posters += 1;
        }
        // Every shipped calibration poster kept: the thresholds must still
        // suit the shipped kind of poster, not only the operator's.
        for (f, t) in base.calibration {
            cal.0.push(f);
            cal.1.push(map(&t));
            base_posters += 1;
        }
    }
    // The L2 strength was tuned for the shipped fit's summed loss over its
    // training rows; on fewer rows the same alpha would shrink the weights
    // (and lose ranking, AUC) far more. Keep the same ratio.
    let (reference_rows, reference_alpha) = reference_fit(parent);
    let alpha = match reference_rows {
        Some(n) if n > 0 => reference_alpha * train.0.len() as f64 / n as f64,
        _ => reference_alpha,
    };
    let train_cfg = TrainConfig {
        alpha,
        max_iterations: cfg.max_iterations,
        threads: cfg.threads,
        // No replicated positives: each fitting thread then works on the
        // shared matrix instead of a copy (memory), and Platt and the
        // thresholds refitted on calibration absorb the class balance.
        max_positive_weight: 1,
    };
    let control = FitControl {
        warm: Some(parent),
        cancel: Some(cancel),
        done: Some(done),
    };
    let mut head = training::train_head_with(
        &labels,
        &training::Split {
            features: &train.0,
            truth: &train.1,
        },
        &training::Split {
            features: &cal.0,
            truth: &cal.1,
        },
        &train_cfg,
        &control,
    )?;
    head.trained_on_backbone = parent.trained_on_backbone.clone();
    let comparison = compare(&head, parent, &held, &held_genres);
    head.provenance = serde_json::json!({
        "tool": format!("marquee {} retrain", env!("CARGO_PKG_VERSION")),
        "method": "warm start from the active head; per-genre L2 logistic regression \
                   (linfa-logistic) on corrections (weighted) plus the shipped training \
                   posters kept in models/; Platt and thresholds refitted on calibration \
                   corrections (weighted) plus the shipped calibration posters",
        "corrections": {"train": trained_corrections, "calibration": total_corrections - trained_corrections - held.len(), "held_out": held.len()},
        "base_posters": base_posters,
        "reference_train_rows": reference_rows,
        "reference_alpha": reference_alpha,
        "learned_genres": labels.iter().filter(|l| !parent.labels().contains(l)).collect::<Vec<_>>(),
        "postponed_genres": postponed,
        "config": cfg,
        "train_config": train_cfg,
    });
    head.metrics = serde_json::json!({
        "split": "held-out corrections",
        "posters": comparison.held_out,
        "model": comparison.candidate.as_ref().map(|c| &c.summary),
        "per_genre": comparison.candidate.as_ref().map(|c| &c.per_genre),
        "parent": comparison.parent.as_ref().map(|c| &c.summary),
        // The shipped validation figures stay the reference for drift.
        "reference": parent.metrics.get("reference").cloned().unwrap_or_else(|| parent.metrics.clone()),
    });
    Ok(Retrained {
        head,
        corrections: total_corrections,
        base_posters,
        comparison,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The shipped fit's training rows and alpha (from the shipped head's
/// provenance, carried along by every head retrained from it).
fn reference_fit(head: &GenreHead) -> (Option<u64>, f64) {
    let p = &head.provenance;
    let rows = p
        .get("reference_train_rows")
        .and_then(serde_json::Value::as_u64)
        .or_else(|| p.get("split")?.get("train")?.as_u64());
    let alpha = p
        .get("reference_alpha")
        .and_then(serde_json::Value::as_f64)
        .or_else(|| p.get("config")?.get("alpha")?.as_f64())
        .unwrap_or(TrainConfig::default().alpha);
    (rows, alpha)
}

/// The parent's genres, then each added genre that can be learned now:
/// [`MIN_EXAMPLES`] corrected posters, with at least one in the fitting and
/// one in the calibration part. The others are postponed (with a reason).
fn learnable_labels(
    parent: &GenreHead,
    corrections: &[CorrectedPoster],
    extra_genres: &[String],
    base_negatives: bool,
) -> (Vec<String>, Vec<String>) {
    let mut labels = parent.labels();
    let mut postponed = Vec::new();
    for g in extra_genres {
        if labels.contains(g) || labels.len() >= MAX_GENRES {
            continue;
        }
        let with: Vec<Split> = corrections
            .iter()
            .filter(|(_, genres, _)| genres.contains(g))
            .map(|(id, _, _)| part_of(id))
            .collect();
        // Negatives too: the base posters, or corrections without it.
        let without: Vec<Split> = corrections
            .iter()
            .filter(|(_, genres, _)| !genres.contains(g))
            .map(|(id, _, _)| part_of(id))
            .collect();
        let both =
            |part: Split| with.contains(&part) && (base_negatives || without.contains(&part));
        let enough =
            with.len() as u64 >= MIN_EXAMPLES && both(Split::Train) && both(Split::Calibration);
        if enough {
            labels.push(g.clone());
        } else {
            postponed.push(format!("{g}: {}/{MIN_EXAMPLES} examples", with.len()));
        }
    }
    (labels, postponed)
}

/// Both heads on the same held-out corrections, each on its own genres.
pub fn compare(
    candidate: &GenreHead,
    parent: &GenreHead,
    features: &[Vec<f32>],
    genres: &[Vec<String>],
) -> Comparison {
    let held_out = |head: &GenreHead| -> Option<HeldOut> {
        if features.is_empty() {
            return None;
        }
        let labels = head.labels();
        let truth: Vec<Vec<bool>> = genres
            .iter()
            .map(|g| labels.iter().map(|l| g.contains(l)).collect())
            .collect();
        let scores: Vec<Vec<f32>> = features.iter().map(|f| head.scores(f)).collect();
        let thresholds: Vec<f32> = head.genres.iter().map(|g| g.threshold).collect();
        let report = evaluation::evaluate(&labels, &scores, &thresholds, &truth);
        Some(HeldOut {
            summary: report.summary,
            per_genre: report.per_genre,
        })
    };
    Comparison {
        held_out: features.len(),
        candidate: held_out(candidate),
        parent: held_out(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::training;

    /// Features: 0 says genre A, 1 says B, 2 says the added genre C.
    fn poster(i: u32, c: bool) -> (Vec<f32>, [bool; 3]) {
        let a = i.is_multiple_of(2);
        let b = i.is_multiple_of(3);
        let noise = (i as f32 * 0.37).sin() * 0.3;
        let on = |x: bool| if x { 2.0 } else { 0.0 };
        (
            vec![on(a) + noise, on(b) - noise, on(c) + noise * 0.5, noise],
            [a, b, c],
        )
    }

    #[test]
    fn an_added_genre_is_learned_and_the_old_ones_kept() {
        let labels = vec!["A".to_string(), "B".to_string()];
        let (mut f, mut t) = (Vec::new(), Vec::new());
        for i in 0..300 {
            let (x, y) = poster(i, false);
            f.push(x);
            t.push(y[..2].to_vec());
        }
        let split = |r: std::ops::Range<usize>| training::Split {
            features: &f[r.clone()],
            truth: &t[r],
        };
        let parent = training::train_head(
            &labels,
            &split(0..200),
            &split(200..300),
            &TrainConfig {
                alpha: 1.0,
                threads: 1,
                ..TrainConfig::default()
            },
        )
        .unwrap();
        let base = BaseSet {
            labels: labels.clone(),
            train: f[..200]
                .iter()
                .cloned()
                .zip(t[..200].iter().cloned())
                .collect(),
            calibration: f[200..]
                .iter()
                .cloned()
                .zip(t[200..].iter().cloned())
                .collect(),
        };
        // 120 corrected posters, half of them C.
        let corrections: Vec<CorrectedPoster> = (1000..1120)
            .map(|i| {
                let (x, y) = poster(i, i % 2 == 1);
                let genres = ["A", "B", "C"]
                    .iter()
                    .zip(y)
                    .filter(|(_, on)| *on)
                    .map(|(g, _)| g.to_string())
                    .collect();
                (format!("poster-{i}"), genres, x)
            })
            .collect();
        let out = retrain(
            &parent,
            corrections.clone(),
            Some(base.clone()),
            &["C".to_string()],
            &RetrainConfig {
                threads: 1,
                ..RetrainConfig::default()
            },
            &AtomicBool::new(false),
            &AtomicUsize::new(0),
        )
        .unwrap();
        assert_eq!(out.head.labels(), ["A", "B", "C"]);
        let s = out.head.scores(&[0.0, 0.0, 2.0, 0.0]);
        assert!(s[2] > 0.7 && s[0] < 0.5, "C learned, A not confused: {s:?}");
        let s = out.head.scores(&[2.0, 0.0, 0.0, 0.0]);
        assert!(s[0] > 0.5 && s[2] < 0.3, "A kept: {s:?}");
        assert!(out.comparison.held_out > 0);

        // Cancelled before it starts: no head.
        let err = retrain(
            &parent,
            corrections,
            Some(base),
            &[],
            &RetrainConfig::default(),
            &AtomicBool::new(true),
            &AtomicUsize::new(0),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("cancelled"), "{err}");
    }

    #[test]
    fn too_few_corrections_is_a_clear_error() {
        let head = GenreHead {
            format: crate::model::head::HEAD_FORMAT,
            trained_on_backbone: String::new(),
            feature_dim: 2,
            feature_mean: vec![0.0; 2],
            feature_std: vec![1.0; 2],
            genres: vec![],
            provenance: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            seen_ids: vec![],
        };
        let err = retrain(
            &head,
            Vec::new(),
            None,
            &[],
            &RetrainConfig::default(),
            &AtomicBool::new(false),
            &AtomicUsize::new(0),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("correct more posters"), "{err}");
    }
}
