//! Labelled posters with their (cached) backbone features, for `train` and `eval`.

use anyhow::Context;
use std::path::Path;

use super::DataArgs;
use crate::model::{self, manifest::Manifest};
use crate::offline::dataset::{self, Labelled};
use crate::offline::feature_cache::{self, FeatureCache};

pub struct WithFeatures {
    pub posters: Vec<Labelled>,
    pub features: Vec<Vec<f32>>,
    /// sha256 of the backbone file the features came from.
    pub backbone_sha256: String,
    pub variant: String,
}

/// Read the poster list and compute (or reuse) every poster's features.
/// Posters whose image cannot be read are reported and left out.
pub fn load(
    data: &DataArgs,
    model_dir: &Path,
    variant: Option<&str>,
) -> anyhow::Result<WithFeatures> {
    let posters = dataset::read_csv(&data.data, &data.images)?;
    let manifest = Manifest::load(model_dir)?;
    let (variant_name, v) = manifest.variant(variant)?;
    let backbone = model::load_backbone(model_dir, &manifest, Some(variant_name))?;
    let mut cache =
        FeatureCache::open(&data.cache_dir(), &v.sha256, manifest.backbone.feature_dim)?;
    let cached = cache.len();
    eprintln!(
        "{} posters; backbone {variant_name}; feature cache {} ({cached} cached)",
        posters.len(),
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
    })
}
