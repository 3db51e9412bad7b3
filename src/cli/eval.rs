//! `marquee eval`: the model's figures on a labelled set, beside a baseline.

use anyhow::Context;
use std::collections::HashSet;
use std::process::ExitCode;

use super::{data, DataArgs, ModelArgs};
use crate::model::evaluation::{self as metrics, Evaluation, Report};
use crate::model::{head::GenreHead, manifest::Manifest};
use crate::offline::dataset;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// A head file to evaluate instead of the shipped one.
    #[arg(long, value_name = "FILE")]
    pub head: Option<std::path::PathBuf>,
    /// Also score posters the head was trained or calibrated on (optimistic).
    #[arg(long)]
    pub include_seen: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.model.dir();
    let manifest = Manifest::load(&dir)?;
    let head = match &args.head {
        Some(path) => GenreHead::load(path)?,
        None => {
            let head_ref = manifest
                .head
                .as_ref()
                .context("the manifest names no head; pass --head FILE")?;
            let bytes =
                crate::model::manifest::read_verified(&dir.join(&head_ref.file), &head_ref.sha256)?;
            GenreHead::from_json(&bytes, &head_ref.file)?
        }
    };
    let set = data::load(&args.data, &args.model)?;
    let seen: HashSet<&str> = if args.include_seen {
        HashSet::new()
    } else {
        head.seen_ids.iter().map(String::as_str).collect()
    };
    let (scores, truth, skipped) = scored(&head, &set, &seen);
    if scores.is_empty() {
        anyhow::bail!("no poster left to evaluate ({skipped} were seen in training; --include-seen scores them)");
    }
    eprintln!(
        "evaluating {} posters ({skipped} seen in training left out) with {} on {}",
        scores.len(),
        set.variant,
        set.runtime.as_str()
    );
    let evaluation = evaluate(&head, &scores, &truth);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print!("{}", render(&evaluation));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn scored(
    head: &GenreHead,
    set: &data::WithFeatures,
    leave_out: &HashSet<&str>,
) -> (Vec<Vec<f32>>, Vec<Vec<bool>>, usize) {
    let labels = head.labels();
    let mut scores = Vec::new();
    let mut posters = Vec::new();
    let mut skipped = 0;
    for (p, f) in set.posters.iter().zip(&set.features) {
        if leave_out.contains(p.id.as_str()) {
            skipped += 1;
            continue;
        }
        scores.push(head.scores(f));
        posters.push(p.clone());
    }
    (scores, dataset::label_matrix(&posters, &labels), skipped)
}

pub fn evaluate(head: &GenreHead, scores: &[Vec<f32>], truth: &[Vec<bool>]) -> Evaluation {
    let labels = head.labels();
    let thresholds: Vec<f32> = head.genres.iter().map(|g| g.threshold).collect();
    let model = metrics::evaluate(&labels, scores, &thresholds, truth);
    let (baseline_name, b_scores, b_thresholds) = metrics::baseline_scores(&labels, scores.len());
    let baseline = metrics::evaluate(&labels, &b_scores, &b_thresholds, truth);
    Evaluation {
        model,
        baseline_name,
        baseline,
    }
}

pub fn render(e: &Evaluation) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = &e.model;
    let _ = writeln!(s, "posters evaluated: {}\n", m.posters);
    let _ = writeln!(
        s,
        "{:<12} {:>9} {:>9} {:>7} {:>8} {:>8} {:>9}",
        "genre", "precision", "recall", "F1", "ROC-AUC", "support", "predicted"
    );
    for g in &m.per_genre {
        let auc = g.roc_auc.map_or("-".to_string(), |a| format!("{a:.3}"));
        let _ = writeln!(
            s,
            "{:<12} {:>9.3} {:>9.3} {:>7.3} {:>8} {:>8} {:>9}",
            g.label, g.precision, g.recall, g.f1, auc, g.support, g.predicted
        );
    }
    let _ = writeln!(s, "\n{:<22} {:>8} {:>12}", "", "model", "baseline");
    type Figure = fn(&Report) -> f64;
    let rows: [(&str, Figure); 8] = [
        ("micro precision", |r| r.summary.micro_precision),
        ("micro recall", |r| r.summary.micro_recall),
        ("micro F1", |r| r.summary.micro_f1),
        ("macro F1", |r| r.summary.macro_f1),
        ("mean ROC-AUC", |r| r.summary.mean_roc_auc),
        ("hit@1", |r| r.summary.hit_at_1),
        ("hit@3", |r| r.summary.hit_at_3),
        ("five-genre accuracy", |r| r.summary.five_genre_accuracy),
    ];
    for (name, f) in rows {
        let _ = writeln!(s, "{:<22} {:>8.3} {:>12.3}", name, f(m), f(&e.baseline));
    }
    let _ = writeln!(s, "(baseline: {})", e.baseline_name);
    if let Some(f) = &m.five_genre {
        let _ = writeln!(
            s,
            "\nfive-genre view ({} posters with one of {}): accuracy {:.3}",
            f.posters,
            f.labels.join(", "),
            f.accuracy
        );
        let _ = write!(s, "{:<10}", "true\\pred");
        for l in &f.labels {
            let _ = write!(s, " {:>9}", l);
        }
        let _ = writeln!(s, " {:>9}", "accuracy");
        for (k, row) in f.confusion.iter().enumerate() {
            let _ = write!(s, "{:<10}", f.labels[k]);
            for c in row {
                let _ = write!(s, " {:>9}", c);
            }
            let _ = writeln!(s, " {:>9.3}", f.per_genre_accuracy[k].1);
        }
    }
    let _ = writeln!(s, "\nmost frequent top-3 patterns:");
    for p in m.top3_patterns.iter().take(5) {
        let _ = writeln!(s, "  {:>5.1}%  {}", p.share * 100.0, p.genres.join(" + "));
    }
    match &m.pattern_warning {
        Some(w) => {
            let _ = writeln!(s, "WARNING: {w}");
        }
        None => {
            let _ = writeln!(
                s,
                "no top-3 pattern dominates (largest share {:.1}%)",
                m.top3_patterns.first().map_or(0.0, |p| p.share * 100.0)
            );
        }
    }
    s
}
