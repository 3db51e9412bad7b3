//! What automated tagging saves against tagging every poster by hand.
//!
//! Posters whose best genre scores at or over the auto-accept threshold are
//! tagged automatically; the rest go to a person as before. Some automatic
//! tags are wrong, and fixing one costs a correction. How often is measured
//! on the posters people corrected on this device, at the same threshold;
//! until there are corrections, the model's validation precision stands in
//! and the page says so.

use crate::store::{ClassificationRecord, Correction};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, ToSchema)]
pub struct ImpactInputs {
    pub posters_per_year: f64,
    /// What tagging one poster by hand costs.
    pub manual_cost: f64,
    /// What fixing one wrongly auto-tagged poster costs.
    pub correction_cost: f64,
    /// Auto-accept when the best genre's score is at least this.
    pub threshold: f64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, ToSchema)]
pub struct CurvePoint {
    pub threshold: f64,
    pub savings: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Impact {
    pub inputs: ImpactInputs,
    /// Share of the device's posters at or over the threshold.
    pub auto_share: f64,
    /// Share of auto-accepted posters whose tags needed no correction.
    pub precision: f64,
    /// `corrections` (measured on this device) or `validation` (estimate).
    pub precision_source: &'static str,
    /// Corrected posters at or over the threshold that back `precision`.
    pub precision_backed_by: u64,
    pub auto_posters: f64,
    pub manual_posters: f64,
    pub corrections_needed: f64,
    pub cost_manual_only: f64,
    pub cost_with_marquee: f64,
    pub savings: f64,
    pub savings_share: f64,
    /// Savings at each threshold from 0.05 to 0.95, for the chart.
    pub curve: Vec<CurvePoint>,
    /// The threshold on the curve that saves most.
    pub best_threshold: f64,
}

/// `posters`: each poster's latest classification; `corrections`: the
/// people's corrections; `fallback_precision`: the model's validation
/// precision, used while no corrected poster is over the threshold.
pub fn compute(
    inputs: ImpactInputs,
    posters: &[ClassificationRecord],
    corrections: &[Correction],
    fallback_precision: f64,
) -> Impact {
    let at =
        |threshold: f64| evaluate(threshold, &inputs, posters, corrections, fallback_precision);
    let main = at(inputs.threshold);
    let curve: Vec<CurvePoint> = (1..20)
        .map(|i| {
            let threshold = f64::from(i) * 0.05;
            CurvePoint {
                threshold,
                savings: at(threshold).savings,
            }
        })
        .collect();
    let best_threshold = curve
        .iter()
        .max_by(|a, b| {
            a.savings
                .total_cmp(&b.savings)
                .then(b.threshold.total_cmp(&a.threshold))
        })
        .map_or(inputs.threshold, |p| p.threshold);
    Impact {
        curve,
        best_threshold,
        ..main
    }
}

fn best_score(record: &ClassificationRecord) -> f64 {
    record.genres.first().map_or(0.0, |g| f64::from(g.score))
}

fn same_genres(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

fn evaluate(
    threshold: f64,
    inputs: &ImpactInputs,
    posters: &[ClassificationRecord],
    corrections: &[Correction],
    fallback_precision: f64,
) -> Impact {
    let auto_share = if posters.is_empty() {
        0.0
    } else {
        posters
            .iter()
            .filter(|p| best_score(p) >= threshold)
            .count() as f64
            / posters.len() as f64
    };
    let over: Vec<&Correction> = corrections
        .iter()
        .filter(|c| best_score(&c.predicted) >= threshold)
        .collect();
    let (precision, precision_source) = if over.is_empty() {
        (fallback_precision.clamp(0.0, 1.0), "validation")
    } else {
        let right = over
            .iter()
            .filter(|c| same_genres(&c.truth, &c.predicted.tags))
            .count();
        (right as f64 / over.len() as f64, "corrections")
    };
    let n = inputs.posters_per_year.max(0.0);
    let auto_posters = n * auto_share;
    let manual_posters = n - auto_posters;
    let corrections_needed = auto_posters * (1.0 - precision);
    let cost_manual_only = n * inputs.manual_cost;
    let cost_with_marquee =
        manual_posters * inputs.manual_cost + corrections_needed * inputs.correction_cost;
    let savings = cost_manual_only - cost_with_marquee;
    Impact {
        inputs: ImpactInputs {
            threshold,
            ..*inputs
        },
        auto_share,
        precision,
        precision_source,
        precision_backed_by: over.len() as u64,
        auto_posters,
        manual_posters,
        corrections_needed,
        cost_manual_only,
        cost_with_marquee,
        savings,
        savings_share: if cost_manual_only > 0.0 {
            savings / cost_manual_only
        } else {
            0.0
        },
        curve: Vec::new(),
        best_threshold: threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GenreScore;
    use crate::poster::PosterId;

    fn record(best: f32, tags: &[&str]) -> ClassificationRecord {
        let genres = vec![
            GenreScore {
                label: "Drama".into(),
                score: best,
            },
            GenreScore {
                label: "Comedy".into(),
                score: 0.01,
            },
        ];
        ClassificationRecord {
            id: 1,
            poster_id: PosterId::of_bytes(format!("{best}").as_bytes()),
            source: "http".into(),
            model: "m".into(),
            top3: genres.clone(),
            genres,
            tags: tags.iter().map(|s| (*s).into()).collect(),
            latency_ms: 1.0,
            created_at_ms: 0,
        }
    }

    #[test]
    fn hand_computed_savings() {
        let posters = [
            record(0.9, &["Drama"]),
            record(0.8, &["Drama"]),
            record(0.3, &[]),
            record(0.2, &[]),
        ];
        let corrections = [
            Correction {
                poster_id: PosterId::of_bytes(b"a"),
                truth: vec!["Drama".into()],
                predicted: record(0.9, &["Drama"]),
                corrected_at_ms: 0,
            },
            Correction {
                poster_id: PosterId::of_bytes(b"b"),
                truth: vec!["Comedy".into()],
                predicted: record(0.7, &["Drama"]),
                corrected_at_ms: 0,
            },
        ];
        let inputs = ImpactInputs {
            posters_per_year: 1000.0,
            manual_cost: 2.0,
            correction_cost: 1.0,
            threshold: 0.5,
        };
        let impact = compute(inputs, &posters, &corrections, 0.4);
        // Half the posters auto; one of the two corrected ones over 0.5 was right.
        assert_eq!(impact.auto_share, 0.5);
        assert_eq!(impact.precision, 0.5);
        assert_eq!(impact.precision_source, "corrections");
        assert_eq!(impact.cost_manual_only, 2000.0);
        // 500 by hand at 2 + 250 corrections at 1.
        assert_eq!(impact.cost_with_marquee, 1250.0);
        assert_eq!(impact.savings, 750.0);
        assert_eq!(impact.curve.len(), 19);

        // Over every corrected poster: the validation figure stands in.
        let high = compute(
            ImpactInputs {
                threshold: 0.95,
                ..inputs
            },
            &posters,
            &corrections,
            0.4,
        );
        assert_eq!(high.precision_source, "validation");
        assert_eq!(high.auto_share, 0.0);
        assert_eq!(high.savings, 0.0);
    }
}
