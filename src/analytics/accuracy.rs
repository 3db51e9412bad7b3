//! Accuracy against the people who corrected posters on the dashboard.
//!
//! Each corrected poster counts once: its latest correction is the truth,
//! its latest classification the prediction (the stored tags, exactly what
//! was published). Every figure says how many corrections back it.

use crate::model::evaluation::{five_genre, roc_auc, Counts, FiveGenre};
use crate::store::Correction;
use serde::Serialize;
use utoipa::ToSchema;

/// Under this many corrections the page warns that the figures are noisy.
pub const FEW_CORRECTIONS: usize = 30;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct GenreAccuracy {
    pub label: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub roc_auc: Option<f64>,
    /// Corrected posters that have the genre (the recall's denominator).
    pub support: u64,
    /// Corrected posters the model tagged with it (the precision's).
    pub predicted: u64,
    /// Corrected posters where either side has the genre: what backs the F1.
    pub backed_by: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Accuracy {
    pub corrections: u64,
    /// Corrections that kept the model's tags exactly.
    pub confirmed: u64,
    pub micro_precision: Option<f64>,
    pub micro_recall: Option<f64>,
    pub micro_f1: Option<f64>,
    /// The model's best genre is one the person chose.
    pub hit_at_1: Option<f64>,
    pub per_genre: Vec<GenreAccuracy>,
    pub five_genre: Option<FiveGenre>,
    /// Set when the figures rest on too few corrections.
    pub warning: Option<String>,
}

fn some_ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn f1(c: &Counts) -> Option<f64> {
    let d = 2 * c.tp + c.fp + c.fn_;
    (d > 0).then(|| (2 * c.tp) as f64 / d as f64)
}

/// Figures for `labels` (the model's genres, in its order).
pub fn compute(labels: &[String], corrections: &[Correction]) -> Accuracy {
    let g = labels.len();
    let mut counts = vec![Counts::default(); g];
    let mut scores: Vec<Vec<f32>> = Vec::with_capacity(corrections.len());
    let mut truth: Vec<Vec<bool>> = Vec::with_capacity(corrections.len());
    let (mut confirmed, mut hit1, mut with_truth) = (0u64, 0u64, 0u64);
    for c in corrections {
        let t: Vec<bool> = labels.iter().map(|l| c.truth.contains(l)).collect();
        let p: Vec<bool> = labels
            .iter()
            .map(|l| c.predicted.tags.contains(l))
            .collect();
        let s: Vec<f32> = labels
            .iter()
            .map(|l| {
                c.predicted
                    .genres
                    .iter()
                    .find(|x| &x.label == l)
                    .map_or(0.0, |x| x.score)
            })
            .collect();
        for j in 0..g {
            match (p[j], t[j]) {
                (true, true) => counts[j].tp += 1,
                (true, false) => counts[j].fp += 1,
                (false, true) => counts[j].fn_ += 1,
                (false, false) => {}
            }
        }
        let mut a = c.truth.clone();
        let mut b = c.predicted.tags.clone();
        a.sort();
        b.sort();
        if a == b {
            confirmed += 1;
        }
        if t.iter().any(|&x| x) {
            with_truth += 1;
            if c.predicted
                .genres
                .first()
                .is_some_and(|best| c.truth.contains(&best.label))
            {
                hit1 += 1;
            }
        }
        scores.push(s);
        truth.push(t);
    }
    let per_genre = (0..g)
        .map(|j| {
            let c = &counts[j];
            let column: Vec<f32> = scores.iter().map(|s| s[j]).collect();
            let truth_col: Vec<bool> = truth.iter().map(|t| t[j]).collect();
            GenreAccuracy {
                label: labels[j].clone(),
                precision: some_ratio(c.tp as u64, (c.tp + c.fp) as u64),
                recall: some_ratio(c.tp as u64, (c.tp + c.fn_) as u64),
                f1: f1(c),
                roc_auc: roc_auc(&column, &truth_col),
                support: (c.tp + c.fn_) as u64,
                predicted: (c.tp + c.fp) as u64,
                backed_by: (c.tp + c.fp + c.fn_) as u64,
            }
        })
        .collect();
    let total = counts.iter().fold(Counts::default(), |mut t, c| {
        t.tp += c.tp;
        t.fp += c.fp;
        t.fn_ += c.fn_;
        t
    });
    let n = corrections.len();
    let warning = (n < FEW_CORRECTIONS).then(|| {
        format!(
            "Only {n} corrected poster{}: these figures will move a lot with each \
             correction. Correct at least {FEW_CORRECTIONS} posters, picked at random, \
             before trusting them.",
            if n == 1 { "" } else { "s" }
        )
    });
    Accuracy {
        corrections: n as u64,
        confirmed,
        micro_precision: some_ratio(total.tp as u64, (total.tp + total.fp) as u64),
        micro_recall: some_ratio(total.tp as u64, (total.tp + total.fn_) as u64),
        micro_f1: f1(&total),
        hit_at_1: some_ratio(hit1, with_truth),
        per_genre,
        five_genre: five_genre(labels, &scores, &truth).filter(|f| f.posters > 0),
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GenreScore;
    use crate::poster::PosterId;
    use crate::store::ClassificationRecord;

    fn correction(truth: &[&str], tags: &[&str], scores: &[(&str, f32)]) -> Correction {
        let genres: Vec<GenreScore> = scores
            .iter()
            .map(|(l, s)| GenreScore {
                label: (*l).into(),
                score: *s,
            })
            .collect();
        Correction {
            poster_id: PosterId::of_bytes(format!("{truth:?}{tags:?}").as_bytes()),
            truth: truth.iter().map(|s| (*s).into()).collect(),
            predicted: ClassificationRecord {
                id: 1,
                poster_id: PosterId::of_bytes(b"x"),
                source: "http".into(),
                model: "m".into(),
                top3: genres.iter().take(3).cloned().collect(),
                genres,
                tags: tags.iter().map(|s| (*s).into()).collect(),
                latency_ms: 1.0,
                created_at_ms: 0,
            },
            corrected_at_ms: 0,
        }
    }

    #[test]
    fn hand_computed_counts() {
        let labels: Vec<String> = ["Drama", "Comedy", "Horror"].map(String::from).to_vec();
        let c = [
            // Drama TP, Comedy FP.
            correction(
                &["Drama"],
                &["Drama", "Comedy"],
                &[("Drama", 0.9), ("Comedy", 0.6), ("Horror", 0.1)],
            ),
            // Horror FN, Drama FP; best genre wrong.
            correction(
                &["Horror"],
                &["Drama"],
                &[("Drama", 0.7), ("Horror", 0.4), ("Comedy", 0.1)],
            ),
            // Confirmed as is.
            correction(
                &["Comedy"],
                &["Comedy"],
                &[("Comedy", 0.8), ("Drama", 0.3), ("Horror", 0.1)],
            ),
        ];
        let a = compute(&labels, &c);
        assert_eq!(a.corrections, 3);
        assert_eq!(a.confirmed, 1);
        // TP 2 (Drama, Comedy), FP 2 (Comedy, Drama), FN 1 (Horror).
        assert_eq!(a.micro_precision, Some(0.5));
        assert_eq!(a.micro_recall, Some(2.0 / 3.0));
        assert_eq!(a.micro_f1, Some(4.0 / 7.0));
        assert_eq!(a.hit_at_1, Some(2.0 / 3.0));
        let drama = &a.per_genre[0];
        assert_eq!((drama.support, drama.predicted, drama.backed_by), (1, 2, 2));
        assert_eq!(drama.precision, Some(0.5));
        let horror = &a.per_genre[2];
        assert_eq!(horror.precision, None);
        assert_eq!(horror.recall, Some(0.0));
        assert!(a.warning.is_some());
    }

    #[test]
    fn no_corrections_gives_no_figures() {
        let a = compute(&["Drama".to_string()], &[]);
        assert_eq!(a.micro_f1, None);
        assert_eq!(a.hit_at_1, None);
        assert!(a.five_genre.is_none());
    }
}
