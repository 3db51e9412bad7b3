//! `marquee train`: rebuild the genre head from labelled posters.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::{data, eval, DataArgs, ModelArgs};
use crate::model::manifest::{sha256_hex, FileRef, Manifest};
use crate::model::training::{self, TrainConfig};
use crate::offline::dataset::{self, split_of, Split};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the head (JSON). When its folder holds a manifest.json,
    /// the manifest is updated to name the new head and its checksum.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Genres with fewer posters than this are not learned.
    #[arg(long, default_value_t = 100)]
    pub min_count: usize,
    /// Split seed: which posters train, calibrate and validate (0: the shipped split).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// L2 regularisation strength.
    #[arg(long)]
    pub alpha: Option<f64>,
}

/// Features, truth and ids of one split.
type Part = (Vec<Vec<f32>>, Vec<Vec<bool>>, Vec<String>);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir = args.model.dir();
    let set = data::load(&args.data, &dir, args.model.variant.as_deref())?;
    let features_done = started.elapsed();
    let labels = dataset::frequent_genres(&set.posters, args.min_count);
    anyhow::ensure!(
        !labels.is_empty(),
        "no genre has {} posters",
        args.min_count
    );
    let truth = dataset::label_matrix(&set.posters, &labels);
    let mut parts: [Part; 3] = Default::default();
    for ((p, f), t) in set.posters.iter().zip(&set.features).zip(&truth) {
        let k = match split_of(&p.id, args.seed) {
            Split::Train => 0,
            Split::Calibration => 1,
            Split::Validation => 2,
        };
        parts[k].0.push(f.clone());
        parts[k].1.push(t.clone());
        parts[k].2.push(p.id.clone());
    }
    let mut cfg = TrainConfig::default();
    if let Some(alpha) = args.alpha {
        cfg.alpha = alpha;
    }
    eprintln!(
        "training {} genres on {} posters, calibrating on {}, validating on {}",
        labels.len(),
        parts[0].0.len(),
        parts[1].0.len(),
        parts[2].0.len()
    );
    let fit_start = Instant::now();
    let mut head = training::train_head(
        &labels,
        &training::Split {
            features: &parts[0].0,
            truth: &parts[0].1,
        },
        &training::Split {
            features: &parts[1].0,
            truth: &parts[1].1,
        },
        &cfg,
    )?;
    let fit_time = fit_start.elapsed();
    let scores: Vec<Vec<f32>> = parts[2].0.iter().map(|f| head.scores(f)).collect();
    let evaluation = eval::evaluate(&head, &scores, &parts[2].1);
    let mut seen: Vec<String> = parts[0].2.iter().chain(&parts[1].2).cloned().collect();
    seen.sort();
    head.trained_on_backbone = set.backbone_sha256.clone();
    head.seen_ids = seen;
    head.provenance = serde_json::json!({
        "tool": format!("marquee {} train", env!("CARGO_PKG_VERSION")),
        "data": args.data.data.display().to_string(),
        "posters": set.posters.len(),
        "split": {"salt": dataset::SPLIT_SALT, "seed": args.seed, "train": parts[0].0.len(),
                  "calibration": parts[1].0.len(), "validation": parts[2].0.len()},
        "backbone_variant": set.variant,
        "min_count": args.min_count,
        "config": cfg,
        "method": "per-genre L2 logistic regression (linfa-logistic) on standardised features, \
                   positives replicated up to max_positive_weight, Platt calibration and \
                   F1-optimal threshold on the calibration split",
    });
    head.metrics = serde_json::json!({
        "split": "validation (held out)",
        "posters": evaluation.model.posters,
        "model": evaluation.model.summary,
        "baseline": evaluation.baseline.summary,
        "per_genre": evaluation.model.per_genre,
    });
    let mut json = serde_json::to_string(&head)?;
    json.push('\n');
    std::fs::write(&args.out, &json).with_context(|| format!("writing {}", args.out.display()))?;
    update_manifest(&args.out, &json, &labels, &head.metrics)?;
    print!("{}", eval::render(&evaluation));
    eprintln!(
        "wrote {} (features {:.1}s, fit {:.1}s, total {:.1}s)",
        args.out.display(),
        features_done.as_secs_f64(),
        fit_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Point the manifest beside `out` (if any) at the new head.
fn update_manifest(
    out: &std::path::Path,
    json: &str,
    labels: &[String],
    metrics: &serde_json::Value,
) -> anyhow::Result<()> {
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.join(crate::model::manifest::MANIFEST_FILE).is_file() {
        return Ok(());
    }
    let mut manifest = Manifest::load(&folder)?;
    let file = out
        .file_name()
        .context("--out must name a file")?
        .to_string_lossy()
        .to_string();
    manifest.head = Some(FileRef {
        file,
        sha256: sha256_hex(json.as_bytes()),
        extra: Default::default(),
    });
    manifest.labels = labels.to_vec();
    manifest
        .extra
        .insert("head_metrics".into(), metrics.clone());
    manifest.save(&folder)?;
    eprintln!("updated {}", folder.join("manifest.json").display());
    Ok(())
}
