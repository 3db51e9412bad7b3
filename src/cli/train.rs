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
    /// Also write what the device keeps of the training posters for
    /// retraining on corrections (8-bit features and genres), and name it
    /// in the manifest beside it. Use the variant the daemon runs (int8).
    #[arg(long, value_name = "FILE")]
    pub base_features: Option<PathBuf>,
    /// Training posters kept in `--base-features` at most (spread by id),
    /// with a fifth as many calibration posters.
    #[arg(long, default_value_t = 1500)]
    pub base_posters: usize,
}

/// Features, truth and ids of one split.
type Part = (Vec<Vec<f32>>, Vec<Vec<bool>>, Vec<String>);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let set = data::load(&args.data, &args.model)?;
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
    if let Some(path) = &args.base_features {
        write_base(path, &labels, &parts, &set, &args)?;
    }
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

/// The base features file: an even sample of the training and calibration
/// splits (by id order, which the split hash already shuffles).
fn write_base(
    path: &std::path::Path,
    labels: &[String],
    parts: &[Part; 3],
    set: &data::WithFeatures,
    args: &Args,
) -> anyhow::Result<()> {
    let backbone = set.backbone_sha256.as_str();
    use crate::learning::base::{encode, BaseRow, Header};
    fn pick(part: &Part, want: usize, calibration: bool) -> Vec<BaseRow<'_>> {
        let step = part.0.len().div_ceil(want.max(1)).max(1);
        (0..part.0.len())
            .step_by(step)
            .map(|i| BaseRow {
                features: &part.0[i],
                truth: &part.1[i],
                calibration,
            })
            .collect()
    }
    let mut rows = pick(&parts[0], args.base_posters, false);
    rows.extend(pick(&parts[1], args.base_posters / 5, true));
    let header = Header {
        dim: parts[0].0.first().map_or(0, Vec::len),
        labels: labels.to_vec(),
        posters: rows.len(),
        backbone: backbone.to_string(),
        provenance: serde_json::json!({
            "tool": format!("marquee {} train --base-features", env!("CARGO_PKG_VERSION")),
            "data": args.data.data.display().to_string(),
            "split": {"salt": dataset::SPLIT_SALT, "seed": args.seed},
            "train_posters": rows.iter().filter(|r| !r.calibration).count(),
            "calibration_posters": rows.iter().filter(|r| r.calibration).count(),
            "quantisation": "per-feature min/max, 8 bits",
        }),
    };
    let bytes = encode(&header, &rows)?;
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    // Named in the manifest beside it, not beside `--out`: the base can be
    // rebuilt for the variant the daemon runs while the head goes elsewhere.
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if folder.join(crate::model::manifest::MANIFEST_FILE).is_file() {
        let mut manifest = Manifest::load(&folder)?;
        let entry = Some(FileRef {
            file: path
                .file_name()
                .context("--base-features must name a file")?
                .to_string_lossy()
                .to_string(),
            sha256: sha256_hex(&bytes),
            extra: [
                ("posters".to_string(), serde_json::json!(header.posters)),
                ("bytes".to_string(), serde_json::json!(bytes.len())),
                // A retrain refuses to mix these with another variant's features.
                ("variant".to_string(), serde_json::json!(set.variant)),
            ]
            .into_iter()
            .collect(),
        });
        // The default variant's go at the top; another variant's (another
        // runtime's file) beside that variant, so each has its own.
        if set.variant == manifest.default_variant {
            manifest.base_features = entry;
        } else if let Some(v) = manifest.variants.get_mut(&set.variant) {
            v.base_features = entry;
        }
        manifest.save(&folder)?;
    }
    eprintln!(
        "wrote {} ({} posters, {} bytes)",
        path.display(),
        header.posters,
        bytes.len()
    );
    Ok(())
}
