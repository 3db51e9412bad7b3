//! What the device has seen: genre mix, confidence, trends, co-occurrence,
//! the top-3 pattern bias check and drift against the validation mix.

use crate::model::evaluation::PATTERN_WARNING_SHARE;
use crate::store::{ClassificationRecord, DayCounts};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Fewer posters than this today and the drift check says it cannot judge:
/// a handful of posters of one film series is not drift.
pub const DRIFT_MIN_POSTERS: usize = 30;
/// Population stability index over the genre mix: under this is stable...
pub const PSI_WATCH: f64 = 0.1;
/// ...over this the mix has moved enough to re-check the model.
pub const PSI_DRIFT: f64 = 0.25;
/// Days of history the trend is fitted on.
pub const TREND_DAYS: usize = 14;
/// The co-occurrence matrix shows the most frequent genres only.
pub const COOCCURRENCE_GENRES: usize = 10;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct GenreShare {
    pub label: String,
    /// Posters tagged with this genre.
    pub posters: u64,
    /// `posters` over all posters considered.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Bin {
    pub from: f64,
    pub to: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Trend {
    pub label: String,
    /// Least-squares slope of the genre's daily share, in percentage
    /// points per week.
    pub points_per_week: f64,
    /// `rising`, `falling` or `flat` (under one point a week).
    pub direction: &'static str,
    /// The genre's share per day (same order as [`Insights::days`]).
    pub daily_share: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Cooccurrence {
    pub labels: Vec<String>,
    /// `counts[i][j]`: posters tagged with both; the diagonal is each genre's total.
    pub counts: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct PatternShare {
    pub genres: Vec<String>,
    pub posters: u64,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct DriftGenre {
    pub label: String,
    /// Share of the validation posters the model tagged with the genre.
    pub reference: f64,
    /// Share of today's posters tagged with it.
    pub today: f64,
    /// Two-proportion z statistic; |z| > 3 is flagged.
    pub z: f64,
    pub flagged: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Drift {
    pub posters_today: u64,
    pub reference_posters: u64,
    /// Population stability index of the normalised genre mix; `None` when
    /// there are too few posters today to judge.
    pub psi: Option<f64>,
    /// `stable`, `watch`, `drift` or `not enough data`.
    pub status: &'static str,
    pub message: String,
    pub genres: Vec<DriftGenre>,
}

/// The Insights page's figures.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Insights {
    /// Distinct posters (each counted by its latest classification).
    pub posters: u64,
    /// Posters with no genre over its threshold (only the top-3 to go by).
    pub untagged: u64,
    pub distribution: Vec<GenreShare>,
    pub mean_confidence: f64,
    /// The best genre's score, ten bins from 0 to 1.
    pub confidence: Vec<Bin>,
    /// Local days, oldest first, with sightings per day.
    pub days: Vec<String>,
    pub sightings_per_day: Vec<u64>,
    pub trends: Vec<Trend>,
    pub cooccurrence: Cooccurrence,
    pub patterns: Vec<PatternShare>,
    /// Set when one top-3 pattern covers more than half the posters.
    pub pattern_warning: Option<String>,
    pub drift: Drift,
}

/// The model's own mix on its validation split, from the head's metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReferenceMix {
    pub posters: u64,
    /// `(genre, posters the model tagged with it)`.
    pub predicted: Vec<(String, u64)>,
}

impl ReferenceMix {
    /// Read from `metrics` of the head file (`posters`, `per_genre[].predicted`).
    pub fn from_head_metrics(metrics: &serde_json::Value) -> Option<Self> {
        let posters = metrics.get("posters")?.as_u64()?;
        let predicted = metrics
            .get("per_genre")?
            .as_array()?
            .iter()
            .map(|g| {
                Some((
                    g.get("label")?.as_str()?.to_owned(),
                    g.get("predicted")?.as_u64()?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { posters, predicted })
    }
}

/// Compute every figure. `latest`: each poster's latest classification;
/// `days`: sightings per day; `today_since_ms`: local midnight.
pub fn compute(
    labels: &[String],
    latest: &[ClassificationRecord],
    days: &[DayCounts],
    reference: Option<&ReferenceMix>,
    today_since_ms: i64,
) -> Insights {
    let n = latest.len() as u64;
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let mut tagged = vec![0u64; labels.len()];
    let mut untagged = 0u64;
    let mut bins = vec![0u64; 10];
    let mut confidence_sum = 0.0;
    let mut pairs = vec![vec![0u64; labels.len()]; labels.len()];
    let mut patterns: HashMap<Vec<String>, u64> = HashMap::new();
    for record in latest {
        let tags: Vec<usize> = record
            .tags
            .iter()
            .filter_map(|t| index.get(t.as_str()).copied())
            .collect();
        if tags.is_empty() {
            untagged += 1;
        }
        for &a in &tags {
            tagged[a] += 1;
            for &b in &tags {
                pairs[a][b] += 1;
            }
        }
        let best = record.genres.first().map_or(0.0, |g| f64::from(g.score));
        confidence_sum += best;
        bins[((best * 10.0).floor() as usize).min(9)] += 1;
        let mut top3: Vec<String> = record.top3.iter().map(|g| g.label.clone()).collect();
        top3.sort();
        *patterns.entry(top3).or_default() += 1;
    }

    let distribution: Vec<GenreShare> = {
        let mut d: Vec<GenreShare> = labels
            .iter()
            .zip(&tagged)
            .map(|(label, &posters)| GenreShare {
                label: label.clone(),
                posters,
                share: ratio(posters, n),
            })
            .collect();
        d.sort_by(|a, b| b.posters.cmp(&a.posters).then(a.label.cmp(&b.label)));
        d
    };

    let mut patterns: Vec<PatternShare> = patterns
        .into_iter()
        .map(|(genres, posters)| PatternShare {
            genres,
            posters,
            share: ratio(posters, n),
        })
        .collect();
    patterns.sort_by(|a, b| b.posters.cmp(&a.posters).then(a.genres.cmp(&b.genres)));
    patterns.truncate(10);
    let pattern_warning = patterns
        .first()
        .filter(|p| p.share > PATTERN_WARNING_SHARE && n >= 20)
        .map(|p| {
            format!(
                "One top-3 pattern ({}) covers {:.0}% of posters: the model may have \
                 collapsed onto it, or the device sees one kind of poster. Check a few \
                 posters by hand and correct them.",
                p.genres.join(" + "),
                p.share * 100.0
            )
        });

    let top: Vec<usize> = distribution
        .iter()
        .filter(|g| g.posters > 0)
        .take(COOCCURRENCE_GENRES)
        .filter_map(|g| index.get(g.label.as_str()).copied())
        .collect();
    let cooccurrence = Cooccurrence {
        labels: top.iter().map(|&i| labels[i].clone()).collect(),
        counts: top
            .iter()
            .map(|&a| top.iter().map(|&b| pairs[a][b]).collect())
            .collect(),
    };

    let today: Vec<&ClassificationRecord> = latest
        .iter()
        .filter(|r| r.created_at_ms >= today_since_ms)
        .collect();

    Insights {
        posters: n,
        untagged,
        distribution,
        mean_confidence: if n == 0 {
            0.0
        } else {
            confidence_sum / n as f64
        },
        confidence: bins
            .into_iter()
            .enumerate()
            .map(|(i, count)| Bin {
                from: i as f64 / 10.0,
                to: (i + 1) as f64 / 10.0,
                count,
            })
            .collect(),
        days: days.iter().map(|d| d.day.clone()).collect(),
        sightings_per_day: days.iter().map(|d| d.classifications).collect(),
        trends: trends(labels, days),
        cooccurrence,
        patterns,
        pattern_warning,
        drift: drift(labels, &today, reference),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Each genre's daily share over the last [`TREND_DAYS`] days with a
/// least-squares slope; genres never seen in that window are left out.
fn trends(labels: &[String], days: &[DayCounts]) -> Vec<Trend> {
    let window = &days[days.len().saturating_sub(TREND_DAYS)..];
    let mut out: Vec<Trend> = labels
        .iter()
        .filter_map(|label| {
            let shares: Vec<f64> = window
                .iter()
                .map(|d| {
                    let k = d
                        .tags
                        .iter()
                        .find(|(t, _)| t == label)
                        .map_or(0, |(_, n)| *n);
                    ratio(k, d.classifications)
                })
                .collect();
            if shares.iter().all(|&s| s == 0.0) {
                return None;
            }
            let per_day = slope(&shares);
            let points_per_week = per_day * 7.0 * 100.0;
            let direction = if window.len() < 3 || points_per_week.abs() < 1.0 {
                "flat"
            } else if points_per_week > 0.0 {
                "rising"
            } else {
                "falling"
            };
            Some(Trend {
                label: label.clone(),
                points_per_week,
                direction,
                daily_share: shares,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.points_per_week
            .abs()
            .total_cmp(&a.points_per_week.abs())
            .then(a.label.cmp(&b.label))
    });
    out
}

/// Least-squares slope of `ys` against 0, 1, 2, ...
pub fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// Today's tag mix against the model's mix on its validation posters.
fn drift(
    labels: &[String],
    today: &[&ClassificationRecord],
    reference: Option<&ReferenceMix>,
) -> Drift {
    let n_today = today.len() as u64;
    let Some(reference) = reference.filter(|r| r.posters > 0) else {
        return Drift {
            posters_today: n_today,
            reference_posters: 0,
            psi: None,
            status: "not enough data",
            message: "The model file carries no validation mix to compare with.".into(),
            genres: Vec::new(),
        };
    };
    let ref_counts: HashMap<&str, u64> = reference
        .predicted
        .iter()
        .map(|(l, n)| (l.as_str(), *n))
        .collect();
    let mut genres = Vec::with_capacity(labels.len());
    let mut today_counts = Vec::with_capacity(labels.len());
    let mut reference_counts = Vec::with_capacity(labels.len());
    for label in labels {
        let k = today
            .iter()
            .filter(|r| r.tags.iter().any(|t| t == label))
            .count() as u64;
        let r = ref_counts.get(label.as_str()).copied().unwrap_or(0);
        today_counts.push(k);
        reference_counts.push(r);
        let p1 = ratio(r, reference.posters);
        let p2 = ratio(k, n_today);
        let pooled = ratio(r + k, reference.posters + n_today);
        let se = (pooled
            * (1.0 - pooled)
            * (1.0 / reference.posters as f64 + 1.0 / n_today.max(1) as f64))
            .sqrt();
        let z = if se > 0.0 { (p2 - p1) / se } else { 0.0 };
        genres.push(DriftGenre {
            label: label.clone(),
            reference: p1,
            today: p2,
            z,
            flagged: n_today as usize >= DRIFT_MIN_POSTERS && z.abs() > 3.0,
        });
    }
    if (n_today as usize) < DRIFT_MIN_POSTERS {
        return Drift {
            posters_today: n_today,
            reference_posters: reference.posters,
            psi: None,
            status: "not enough data",
            message: format!(
                "{n_today} posters today; the drift check needs at least {DRIFT_MIN_POSTERS}."
            ),
            genres,
        };
    }
    let psi = population_stability(&reference_counts, &today_counts);
    let (status, message) = if psi < PSI_WATCH {
        (
            "stable",
            format!("Today's genre mix matches the validation mix (PSI {psi:.3})."),
        )
    } else if psi < PSI_DRIFT {
        (
            "watch",
            format!("Today's genre mix has moved somewhat from the validation mix (PSI {psi:.3}); keep an eye on the accuracy page."),
        )
    } else {
        (
            "drift",
            format!("Today's genre mix differs clearly from the validation mix (PSI {psi:.3}): the posters may not be what the model was trained on. Correct a sample and check the accuracy page."),
        )
    };
    Drift {
        posters_today: n_today,
        reference_posters: reference.posters,
        psi: Some(psi),
        status,
        message,
        genres,
    }
}

/// PSI = sum (p - q) ln(p / q) over the normalised mixes, with a small
/// floor so a genre absent on one side does not give infinity.
pub fn population_stability(reference: &[u64], current: &[u64]) -> f64 {
    const FLOOR: f64 = 1e-4;
    let total_r: u64 = reference.iter().sum();
    let total_c: u64 = current.iter().sum();
    if total_r == 0 || total_c == 0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let p = (r as f64 / total_r as f64).max(FLOOR);
            let q = (c as f64 / total_c as f64).max(FLOOR);
            (q - p) * (q / p).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_its_gradient() {
        assert!((slope(&[1.0, 3.0, 5.0, 7.0]) - 2.0).abs() < 1e-12);
        assert_eq!(slope(&[4.0]), 0.0);
    }

    #[test]
    fn psi_is_zero_for_the_same_mix_and_grows_with_change() {
        assert!(population_stability(&[10, 20, 30], &[1, 2, 3]).abs() < 1e-12);
        let small = population_stability(&[10, 20, 30], &[12, 20, 28]);
        let large = population_stability(&[10, 20, 30], &[30, 20, 10]);
        assert!(small > 0.0 && small < PSI_WATCH, "{small}");
        assert!(large > PSI_DRIFT, "{large}");
        // Hand-computed: p = (0.5, 0.5), q = (0.25, 0.75).
        let expected = (0.25 - 0.5) * (0.25f64 / 0.5).ln() + (0.75 - 0.5) * (0.75f64 / 0.5).ln();
        assert!((population_stability(&[1, 1], &[1, 3]) - expected).abs() < 1e-12);
    }
}
