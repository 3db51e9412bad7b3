//! Multi-label evaluation: per-genre precision/recall/F1/ROC-AUC, micro and
//! macro F1, hit@k, the five-genre view used by older work, top-3 pattern
//! shares (a collapsed model answers the same three genres for everything),
//! and the always-Drama+Comedy baseline.

use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// The five genres of the older single-label work.
pub const FIVE_GENRES: [&str; 5] = ["Action", "Comedy", "Drama", "Romance", "Thriller"];
/// One pattern covering more than this share of posters is flagged.
pub const PATTERN_WARNING_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenreMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// `None` when the set has no positive or no negative poster.
    pub roc_auc: Option<f64>,
    pub support: usize,
    pub predicted: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FiveGenre {
    pub labels: Vec<String>,
    /// Posters with at least one of the five genres.
    pub posters: usize,
    pub accuracy: f64,
    /// `[genre, accuracy, posters]` triples.
    #[schema(value_type = Vec<Object>)]
    pub per_genre_accuracy: Vec<(String, f64, usize)>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pattern {
    pub genres: Vec<String>,
    pub posters: usize,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    pub macro_f1: f64,
    pub mean_roc_auc: f64,
    pub hit_at_1: f64,
    pub hit_at_3: f64,
    pub five_genre_accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub posters: usize,
    pub summary: Summary,
    pub per_genre: Vec<GenreMetrics>,
    pub five_genre: Option<FiveGenre>,
    pub top3_patterns: Vec<Pattern>,
    /// Set when one top-3 pattern covers more than half the posters.
    pub pattern_warning: Option<String>,
}

/// Everything `marquee eval` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub model: Report,
    pub baseline_name: String,
    pub baseline: Report,
}

/// Score `scores[poster][genre]` against `truth[poster][genre]`.
/// A genre is predicted when its score is at or over `thresholds[genre]`.
pub fn evaluate(
    labels: &[String],
    scores: &[Vec<f32>],
    thresholds: &[f32],
    truth: &[Vec<bool>],
) -> Report {
    let g = labels.len();
    let mut per = vec![Counts::default(); g];
    let mut total = Counts::default();
    let (mut hit1, mut hit3, mut with_truth) = (0usize, 0usize, 0usize);
    let mut patterns: HashMap<Vec<usize>, usize> = HashMap::new();
    for (s, t) in scores.iter().zip(truth) {
        for j in 0..g {
            let predicted = s[j] >= thresholds[j];
            let c = &mut per[j];
            match (predicted, t[j]) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => {}
            }
        }
        let order = ranking(s);
        let mut top3: Vec<usize> = order.iter().take(3).copied().collect();
        if t.iter().any(|&x| x) {
            with_truth += 1;
            if order.first().is_some_and(|&i| t[i]) {
                hit1 += 1;
            }
            if top3.iter().any(|&i| t[i]) {
                hit3 += 1;
            }
        }
        top3.sort_unstable();
        *patterns.entry(top3).or_default() += 1;
    }
    for c in &per {
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    let per_genre: Vec<GenreMetrics> = (0..g)
        .map(|j| {
            let column: Vec<f32> = scores.iter().map(|s| s[j]).collect();
            let truth_col: Vec<bool> = truth.iter().map(|t| t[j]).collect();
            GenreMetrics {
                label: labels[j].clone(),
                precision: per[j].precision(),
                recall: per[j].recall(),
                f1: per[j].f1(),
                roc_auc: roc_auc(&column, &truth_col),
                support: per[j].tp + per[j].fn_,
                predicted: per[j].tp + per[j].fp,
            }
        })
        .collect();
    let aucs: Vec<f64> = per_genre.iter().filter_map(|m| m.roc_auc).collect();
    let five_genre = five_genre(labels, scores, truth);
    let n = scores.len();
    let mut top3_patterns: Vec<Pattern> = patterns
        .into_iter()
        .map(|(k, count)| Pattern {
            genres: k.iter().map(|&i| labels[i].clone()).collect(),
            posters: count,
            share: ratio(count, n),
        })
        .collect();
    top3_patterns.sort_by(|a, b| b.posters.cmp(&a.posters).then(a.genres.cmp(&b.genres)));
    top3_patterns.truncate(10);
    let pattern_warning = top3_patterns
        .first()
        .filter(|p| p.share > PATTERN_WARNING_SHARE)
        .map(|p| {
            format!(
                "one top-3 pattern ({}) covers {:.0}% of posters: the model may have collapsed",
                p.genres.join("+"),
                p.share * 100.0
            )
        });
    Report {
        posters: n,
        summary: Summary {
            micro_precision: total.precision(),
            micro_recall: total.recall(),
            micro_f1: total.f1(),
            macro_f1: mean(per_genre.iter().map(|m| m.f1)),
            mean_roc_auc: mean(aucs.iter().copied()),
            hit_at_1: ratio(hit1, with_truth),
            hit_at_3: ratio(hit3, with_truth),
            five_genre_accuracy: five_genre.as_ref().map_or(0.0, |f| f.accuracy),
        },
        per_genre,
        five_genre,
        top3_patterns,
        pattern_warning,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Genre indices by descending score, ties by genre order.
pub fn ranking(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// The five-genre, single-answer view: the model's answer is its best of the
/// five; it is right when that genre is among the poster's genres. A wrong
/// answer is counted against the poster's true genre the model liked best.
pub fn five_genre(
    labels: &[String],
    scores: &[Vec<f32>],
    truth: &[Vec<bool>],
) -> Option<FiveGenre> {
    let idx: Vec<usize> = FIVE_GENRES
        .iter()
        .map(|f| labels.iter().position(|l| l == f))
        .collect::<Option<Vec<_>>>()?;
    let mut confusion = vec![vec![0usize; 5]; 5];
    let (mut posters, mut correct) = (0usize, 0usize);
    for (s, t) in scores.iter().zip(truth) {
        let true_five: Vec<usize> = (0..5).filter(|&k| t[idx[k]]).collect();
        if true_five.is_empty() {
            continue;
        }
        posters += 1;
        let best_of = |ks: &mut dyn Iterator<Item = usize>| {
            ks.max_by(|&a, &b| s[idx[a]].total_cmp(&s[idx[b]]).then(b.cmp(&a)))
        };
        let Some(predicted) = best_of(&mut (0..5)) else {
            continue;
        };
        let row = if true_five.contains(&predicted) {
            correct += 1;
            predicted
        } else {
            best_of(&mut true_five.iter().copied()).unwrap_or(predicted)
        };
        confusion[row][predicted] += 1;
    }
    let per_genre_accuracy = (0..5)
        .map(|k| {
            let row: usize = confusion[k].iter().sum();
            (FIVE_GENRES[k].to_string(), ratio(confusion[k][k], row), row)
        })
        .collect();
    Some(FiveGenre {
        labels: FIVE_GENRES.iter().map(|s| s.to_string()).collect(),
        posters,
        accuracy: ratio(correct, posters),
        per_genre_accuracy,
        confusion,
    })
}

/// ROC-AUC by the rank-sum statistic, ties given their average rank.
pub fn roc_auc(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let pos = truth.iter().filter(|&&t| t).count();
    let neg = truth.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if truth[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

/// The threshold on `scores` that maximises F1 for one genre. Candidates are
/// a fixed grid, so a handful of positives cannot pick an absurd cut.
pub fn best_threshold(scores: &[f32], truth: &[bool]) -> f32 {
    let mut best = (f64::MIN, 0.5f32);
    for step in 1..100 {
        let th = step as f32 / 100.0;
        let mut c = Counts::default();
        for (&s, &t) in scores.iter().zip(truth) {
            match (s >= th, t) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                _ => {}
            }
        }
        if c.f1() > best.0 {
            best = (c.f1(), th);
        }
    }
    best.1
}

/// The always-"Drama + Comedy" answer (then the next most frequent genres,
/// so hit@3 and the five-genre view are defined), as scores.
pub fn baseline_scores(labels: &[String], posters: usize) -> (String, Vec<Vec<f32>>, Vec<f32>) {
    let preferred = ["Drama", "Comedy", "Action"];
    let row: Vec<f32> = labels
        .iter()
        .enumerate()
        .map(|(j, l)| match preferred.iter().position(|p| p == l) {
            Some(k) => 1.0 - k as f32 * 0.1,
            // Later genres get decreasing tiny scores so the order is defined.
            None => 0.1 - j as f32 * 0.001,
        })
        .collect();
    // Drama and Comedy are tags; Action ranks third but is not tagged.
    let thresholds = labels.iter().map(|_| 0.85).collect();
    (
        "always Drama+Comedy".to_string(),
        vec![row; posters],
        thresholds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn auc_matches_hand_computation() {
        // Positives at 0.8 and 0.4, negatives at 0.6 and 0.2: 3 of 4 pairs ordered.
        let auc = roc_auc(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12);
        // A tie between a positive and a negative counts a half.
        let auc = roc_auc(&[0.5, 0.5], &[true, false]).unwrap();
        assert!((auc - 0.5).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    }

    #[test]
    fn precision_recall_f1_micro_macro_and_hits() {
        let l = labels(&["A", "B"]);
        // Poster 1: truth {A}, predicted {A, B}. Poster 2: truth {B}, predicted {}.
        let scores = vec![vec![0.9, 0.6], vec![0.2, 0.4]];
        let truth = vec![vec![true, false], vec![false, true]];
        let r = evaluate(&l, &scores, &[0.5, 0.5], &truth);
        // A: tp1 fp0 fn0 -> f1 1. B: tp0 fp1 fn1 -> f1 0.
        assert_eq!(r.per_genre[0].f1, 1.0);
        assert_eq!(r.per_genre[1].f1, 0.0);
        assert!((r.summary.macro_f1 - 0.5).abs() < 1e-12);
        // micro: tp1 fp1 fn1 -> 2/(2+1+1) = 0.5
        assert!((r.summary.micro_f1 - 0.5).abs() < 1e-12);
        // hit@1: poster 1 top is A (hit), poster 2 top is B (hit).
        assert_eq!(r.summary.hit_at_1, 1.0);
        assert_eq!(r.per_genre[1].support, 1);
        assert_eq!(r.per_genre[1].predicted, 1);
    }

    #[test]
    fn five_genre_view_and_confusion() {
        let l = labels(&["Action", "Comedy", "Drama", "Romance", "Thriller", "War"]);
        let scores = vec![
            vec![0.9, 0.1, 0.2, 0.0, 0.0, 0.0], // says Action, is Action: right
            vec![0.9, 0.1, 0.5, 0.0, 0.0, 0.0], // says Action, is Drama|Comedy: wrong, row Drama
            vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.9], // only War: not counted
        ];
        let truth = vec![
            vec![true, false, false, false, false, false],
            vec![false, true, true, false, false, false],
            vec![false, false, false, false, false, true],
        ];
        let f = five_genre(&l, &scores, &truth).unwrap();
        assert_eq!(f.posters, 2);
        assert!((f.accuracy - 0.5).abs() < 1e-12);
        assert_eq!(f.confusion[0][0], 1);
        assert_eq!(f.confusion[2][0], 1);
    }

    #[test]
    fn collapsed_model_is_flagged() {
        let l = labels(&["A", "B", "C", "D"]);
        let scores = vec![vec![0.9, 0.8, 0.7, 0.1]; 10];
        let truth = vec![vec![true, false, false, false]; 10];
        let r = evaluate(&l, &scores, &[0.5; 4], &truth);
        assert_eq!(r.top3_patterns[0].share, 1.0);
        assert!(r.pattern_warning.is_some());
    }

    #[test]
    fn baseline_tags_exactly_drama_and_comedy() {
        let l = labels(&["Drama", "Comedy", "Action", "Horror"]);
        let (_, s, th) = baseline_scores(&l, 1);
        let tagged: Vec<bool> = s[0].iter().zip(&th).map(|(a, b)| a >= b).collect();
        assert_eq!(tagged, vec![true, true, false, false]);
    }

    #[test]
    fn best_threshold_separates_clean_data() {
        let th = best_threshold(&[0.9, 0.8, 0.3, 0.1], &[true, true, false, false]);
        assert!(th > 0.3 && th <= 0.8, "{th}");
    }
}
