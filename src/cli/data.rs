//! Labelled posters with their (cached) backbone features, for `train` and `eval`.

use anyhow::Context;
use std::path::Path;

use super::{DataArgs, ModelArgs};
use crate::model::{self, manifest::Manifest};
use crate::offline::dataset::{self, Labelled};
use crate::offline::feature_cache::{self, FeatureCache};

pub struct WithFeatures {
    pub posters: Vec<Labelled>,
    pub features: Vec<Vec<f32>>,
    /// sha256 of the backbone file the features came from.
    pub backbone_sha256: String,
    pub variant: String,
    pub runtime: crate::model::backbone::RuntimeKind,
}

/// Read the poster list and compute (or reuse) every poster's features.
/// Posters whose image cannot be read are reported and left out.
pub fn load(data: &DataArgs, model: &ModelArgs) -> anyhow::Result<WithFeatures> {
    let model_dir: &Path = &model.dir();
    let posters = dataset::read_csv(&data.data, &data.images)?;
    let manifest = Manifest::load(model_dir)?;
    let loaded = model::load_backbone_with(
        model_dir,
        &manifest,
        model.variant.as_deref(),
        &model.runtime(data.threads()),
    )?;
    if let Some(why) = &loaded.fallback {
        eprintln!("{why}");
    }
    let backbone = loaded.backbone;
    let (variant_name, v) = manifest.variant(Some(&loaded.variant))?;
    let mut cache = FeatureCache::open(
        &data.cache_dir(),
        &v.sha256,
        backbone.kind(),
        manifest.backbone.feature_dim,
    )?;
    let cached = cache.len();
    eprintln!(
        "{} posters; backbone {variant_name} on {}; feature cache {} ({cached} cached)",
        posters.len(),
        backbone.describe(),
        cache.path().display()
    );
    let progress = |done: usize, total: usize| eprintln!("  features {done}/{total}");
    let extracted = feature_cache::extract(
        &posters,
        &backbone,
        &manifest.normalisation(),
        &mut cache,
        data.threads(),
        &progress,
    )
    .context("extracting backbone features")?;
    let mut kept = Vec::new();
    let mut feats = Vec::new();
    let mut failed = 0usize;
    for (poster, outcome) in posters.into_iter().zip(extracted) {
        match outcome {
            Ok(f) => {
                kept.push(poster);
                feats.push(f);
            }
            Err(e) => {
                failed += 1;
                eprintln!("  skipped {}: {e}", poster.id);
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} posters skipped (unreadable images)");
    }
    Ok(WithFeatures {
        posters: kept,
        features: feats,
        backbone_sha256: v.sha256.clone(),
        variant: variant_name.to_string(),
        runtime: backbone.kind(),
    })
}
