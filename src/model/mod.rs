//! The genre model: manifest, tract backbone, calibrated linfa-trained head.

pub mod backbone;
pub mod evaluation;
pub mod head;
pub mod live;
pub mod manifest;
pub mod training;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use crate::vision::{self, DecodeLimits, Normalisation, VisionError};
use backbone::{Backbone, BackboneError, RuntimeChoice, RuntimeKind, RuntimeOptions};
use head::{GenreHead, HeadError};
use live::{HeadSlot, LiveHead};
use manifest::{read_verified, Manifest, ManifestError};

/// Where the shipped model lives when nothing else is said: `MARQUEE_MODEL_DIR`,
/// else `models/` next to the crate (a source checkout), else the packaged path.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARQUEE_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    // An installed binary finds the packaged model before the checkout it
    // was built in (which may be on the same machine); a checkout's own
    // `models/` is found from its root, or from anywhere as a last resort.
    let beside_binary = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()?
            .parent()
            .map(|p| p.join("share/marquee/models"))
    });
    let candidates: Vec<PathBuf> = [
        Some(PathBuf::from("models")),
        beside_binary,
        Some(PathBuf::from("/usr/share/marquee/models")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")),
    ]
    .into_iter()
    .flatten()
    .collect();
    candidates
        .iter()
        .find(|d| d.join(manifest::MANIFEST_FILE).is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/usr/share/marquee/models"))
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error("model files do not fit together: {0}")]
    Mismatch(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Image(#[from] VisionError),
    #[error(transparent)]
    Backbone(#[from] BackboneError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GenreScore {
    pub label: String,
    pub score: f32,
}

/// What the model says about one poster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Every genre, best first.
    pub genres: Vec<GenreScore>,
    /// The genres at or over their tuned threshold, best first.
    pub tags: Vec<String>,
    /// The three best genres, always present, whatever the thresholds say.
    pub top3: Vec<GenreScore>,
}

/// Time spent in each stage, for `bench` and the latency figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub decode: Duration,
    pub resize: Duration,
    pub backbone: Duration,
    pub head: Duration,
}

/// Backbone + head, loaded once and shared (cheap to clone) across workers.
#[derive(Clone)]
pub struct Classifier {
    backbone: Backbone,
    heads: HeadSlot,
    norm: Normalisation,
    limits: DecodeLimits,
    /// Backbone and variant, e.g. `efficientnet-lite0-int8` (tract) or
    /// `efficientnet-lite0-int8-full@onnxruntime`; the published name adds
    /// the active head's version.
    base_name: String,
    variant: String,
    /// Why `auto` runs tract, when it does.
    fallback: Option<String>,
}

/// One poster through the live heads: what the active head says (published)
/// and, while a candidate is judged, what the candidate says (kept aside).
#[derive(Debug, Clone)]
pub struct LiveResult {
    pub prediction: Prediction,
    pub features: Vec<f32>,
    pub times: StageTimes,
    /// The active head's published name and stored id.
    pub model: String,
    pub active_id: Option<i64>,
    pub shadow: Option<ShadowResult>,
}

#[derive(Debug, Clone)]
pub struct ShadowResult {
    pub head_id: i64,
    pub prediction: Prediction,
}

impl Classifier {
    /// Load a variant (`None`: the manifest's default) from a model folder,
    /// checking every file against the manifest's checksums.
    pub fn load(dir: &Path, variant: Option<&str>) -> Result<Self, ModelError> {
        Self::load_with(dir, variant, &RuntimeOptions::default())
    }

    /// Like [`load`](Self::load), on the runtime `options` ask for; with no
    /// variant named, the one the manifest gives that runtime.
    pub fn load_with(
        dir: &Path,
        variant: Option<&str>,
        options: &RuntimeOptions,
    ) -> Result<Self, ModelError> {
        let manifest = Manifest::load(dir)?;
        let head_ref = manifest.head.as_ref().ok_or(ManifestError::NoHead)?;
        let head_bytes = read_verified(&dir.join(&head_ref.file), &head_ref.sha256)?;
        let head = GenreHead::from_json(&head_bytes, &head_ref.file)?;
        Self::with_head(dir, &manifest, variant, head, options)
    }

    /// Load the backbone from `dir` on the runtime `options` choose and pair
    /// it with a given head.
    pub fn with_head(
        dir: &Path,
        manifest: &Manifest,
        variant: Option<&str>,
        head: GenreHead,
        options: &RuntimeOptions,
    ) -> Result<Self, ModelError> {
        let loaded = load_backbone_with(dir, manifest, variant, options)?;
        if head.feature_dim != manifest.backbone.feature_dim {
            return Err(ModelError::Mismatch(format!(
                "the head takes {} features, the backbone gives {}",
                head.feature_dim, manifest.backbone.feature_dim
            )));
        }
        if !manifest.labels.is_empty() && manifest.labels != head.labels() {
            return Err(ModelError::Mismatch(
                "the head's genres differ from the manifest's labels".into(),
            ));
        }
        let mut base_name = format!("{}-{}", manifest.backbone.name, loaded.variant);
        if loaded.backbone.kind() != RuntimeKind::Tract {
            base_name = format!("{base_name}@{}", loaded.backbone.kind().as_str());
        }
        Ok(Self {
            backbone: loaded.backbone,
            heads: HeadSlot::new(LiveHead::new(&base_name, None, true, head)),
            base_name,
            variant: loaded.variant,
            fallback: loaded.fallback,
            norm: manifest.normalisation(),
            limits: DecodeLimits::default(),
        })
    }

    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The model's name as published with each result, e.g.
    /// `efficientnet-lite0-int8`, or `efficientnet-lite0-int8+head-7` once a
    /// head learned on the device is active.
    pub fn name(&self) -> String {
        self.heads.active().name.clone()
    }

    /// Backbone and variant without the head's version.
    pub fn base_name(&self) -> &str {
        &self.base_name
    }

    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// The runtime running the backbone.
    pub fn runtime(&self) -> RuntimeKind {
        self.backbone.kind()
    }

    /// The runtime as loaded: library version, providers, sessions.
    pub fn runtime_about(&self) -> String {
        self.backbone.describe()
    }

    /// Why `backend = "auto"` runs tract, when it does.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The active head (a snapshot: a promotion later does not change it).
    pub fn head(&self) -> std::sync::Arc<LiveHead> {
        self.heads.active()
    }

    /// The live heads, shared: what the learning loop swaps.
    pub fn heads(&self) -> &HeadSlot {
        &self.heads
    }

    pub fn classify(&self, bytes: &[u8]) -> Result<Prediction, ClassifyError> {
        self.classify_timed(bytes).map(|(p, _)| p)
    }

    pub fn classify_timed(&self, bytes: &[u8]) -> Result<(Prediction, StageTimes), ClassifyError> {
        let mut times = StageTimes::default();
        let t = Instant::now();
        let image = vision::decode(bytes, &self.limits)?;
        times.decode = t.elapsed();
        self.classify_image_timed(&image, times)
    }

    pub fn classify_image_timed(
        &self,
        image: &image::RgbImage,
        times: StageTimes,
    ) -> Result<(Prediction, StageTimes), ClassifyError> {
        self.classify_image_with_features(image, times)
            .map(|(prediction, _, times)| (prediction, times))
    }

    /// Like [`classify_image_timed`](Self::classify_image_timed), also giving
    /// the backbone's pooled features (kept for the poster map and retraining).
    pub fn classify_image_with_features(
        &self,
        image: &image::RgbImage,
        times: StageTimes,
    ) -> Result<(Prediction, Vec<f32>, StageTimes), ClassifyError> {
        self.classify_live(image, times)
            .map(|live| (live.prediction, live.features, live.times))
    }

    /// The daemon's path: the active head's prediction and name, and the
    /// candidate's prediction from the same features when there is one.
    pub fn classify_live(
        &self,
        image: &image::RgbImage,
        mut times: StageTimes,
    ) -> Result<LiveResult, ClassifyError> {
        let t = Instant::now();
        let resized = vision::resize(image, &self.norm);
        let tensor = vision::to_tensor(&resized, &self.norm);
        times.resize = t.elapsed();
        let t = Instant::now();
        let features = self.backbone.features(tensor)?;
        times.backbone = t.elapsed();
        let t = Instant::now();
        let heads = self.heads.get();
        let prediction = predict(&heads.active.head, &features);
        times.head = t.elapsed();
        let shadow = heads.candidate.as_ref().and_then(|c| {
            c.id.map(|head_id| ShadowResult {
                head_id,
                prediction: predict(&c.head, &features),
            })
        });
        Ok(LiveResult {
            prediction,
            features,
            times,
            model: heads.active.name.clone(),
            active_id: heads.active.id,
            shadow,
        })
    }

    /// The backbone's pooled features for an image file's bytes.
    pub fn features(&self, bytes: &[u8]) -> Result<Vec<f32>, ClassifyError> {
        let image = vision::decode(bytes, &self.limits)?;
        features_of(&self.backbone, &self.norm, &image)
    }
}

/// A backbone on its runtime, and the variant it runs.
pub struct LoadedBackbone {
    pub backbone: Backbone,
    pub variant: String,
    /// Why `auto` fell back to tract, when it did.
    pub fallback: Option<String>,
}

/// Load the backbone on the runtime `options` choose. With no variant named,
/// each runtime gets the file the manifest gives it (`runtime_variants`).
/// `auto` tries onnxruntime and falls back to tract when the library (or a
/// provider) is not there; a broken model file is an error either way.
pub fn load_backbone_with(
    dir: &Path,
    manifest: &Manifest,
    variant: Option<&str>,
    options: &RuntimeOptions,
) -> Result<LoadedBackbone, ModelError> {
    let load = |kind: RuntimeKind| -> Result<LoadedBackbone, ModelError> {
        let wanted = variant.unwrap_or_else(|| manifest.variant_for(kind.as_str()));
        let (name, v) = manifest.variant(Some(wanted))?;
        if !manifest.runs_on(name, kind.as_str()) {
            return Err(ModelError::Mismatch(format!(
                "variant {name} is made for {} only; on {} use {}",
                v.runtimes.join(", "),
                kind.as_str(),
                manifest.variant_for(kind.as_str())
            )));
        }
        let bytes = read_verified(&dir.join(&v.file), &v.sha256)?;
        let backbone = Backbone::load(&bytes, &manifest.backbone, kind, options)?;
        Ok(LoadedBackbone {
            backbone,
            variant: name.to_string(),
            fallback: None,
        })
    };
    match options.choice {
        RuntimeChoice::Tract => load(RuntimeKind::Tract),
        RuntimeChoice::Onnxruntime => load(RuntimeKind::Onnxruntime),
        RuntimeChoice::Auto => match load(RuntimeKind::Onnxruntime) {
            Err(ModelError::Backbone(BackboneError::Onnxruntime(why))) => {
                let mut tract = load(RuntimeKind::Tract)?;
                tract.fallback = Some(why);
                Ok(tract)
            }
            other => other,
        },
    }
}

pub fn features_of(
    backbone: &Backbone,
    norm: &Normalisation,
    image: &image::RgbImage,
) -> Result<Vec<f32>, ClassifyError> {
    let resized = vision::resize(image, norm);
    Ok(backbone.features(vision::to_tensor(&resized, norm))?)
}

/// Scores, tags over threshold and top-3 from pooled features.
pub fn predict(head: &GenreHead, features: &[f32]) -> Prediction {
    let scores = head.scores(features);
    prediction_from_scores(head, &scores)
}

pub fn prediction_from_scores(head: &GenreHead, scores: &[f32]) -> Prediction {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Ties broken by genre order so the output is deterministic.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let genres: Vec<GenreScore> = order
        .iter()
        .map(|&i| GenreScore {
            label: head.genres[i].label.clone(),
            score: scores[i],
        })
        .collect();
    let tags = order
        .iter()
        .filter(|&&i| scores[i] >= head.genres[i].threshold)
        .map(|&i| head.genres[i].label.clone())
        .collect();
    let top3 = genres.iter().take(3).cloned().collect();
    Prediction { genres, tags, top3 }
}
