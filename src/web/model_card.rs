//! The model card: what the device runs, how it was built, how well it did
//! on held-out posters, and how fast it is on this board.

use crate::model::head::GenreHead;
use crate::model::live::HeadSlot;
use crate::model::manifest::Manifest;
use serde::Serialize;
use std::sync::{Arc, Mutex, PoisonError};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardGenre {
    pub label: String,
    /// Tagged at or over this calibrated score.
    pub threshold: f32,
    /// Validation figures for this genre (precision, recall, F1, ROC-AUC, support).
    #[schema(value_type = Object)]
    pub validation: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelCard {
    /// As published with each result, e.g. `efficientnet-lite0-int8`.
    pub name: String,
    pub backbone: String,
    pub variant: String,
    pub file: String,
    pub file_bytes: Option<u64>,
    pub sha256: String,
    /// How the variant was quantised (the manifest's own words).
    pub quantisation: Option<String>,
    /// `[width, height]` the poster is resized to.
    pub input_size: [u32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub feature_dim: usize,
    pub labels: Vec<String>,
    pub genres: Vec<CardGenre>,
    /// Validation summary (micro/macro F1, mean ROC-AUC, hit@1/3, five-genre
    /// accuracy) and the always-Drama+Comedy baseline beside it.
    #[schema(value_type = Object)]
    pub validation: serde_json::Value,
    #[schema(value_type = Object)]
    pub baseline: serde_json::Value,
    pub validation_posters: Option<u64>,
    /// The validation micro-precision: the business-impact page's estimate
    /// until this device has corrections.
    pub validation_precision: f64,
    #[schema(value_type = Object)]
    pub provenance: serde_json::Value,
    pub built_with: Option<String>,
    /// What `validation` was measured on: held-out posters of the labelled
    /// set (the shipped head) or held-out corrections (a head learned here).
    pub validation_split: Option<String>,
    /// The active head's id in the store (`GET /api/v1/model/heads`).
    pub head_id: Option<i64>,
    /// What runs the backbone: `tract` or `onnxruntime`.
    pub runtime: String,
    /// The runtime as loaded (library version, providers, sessions).
    pub runtime_about: String,
    /// Why `backend = "auto"` runs tract, when it does.
    pub runtime_fallback: Option<String>,
}

/// The runtime part of the card, fixed at start.
#[derive(Debug, Clone, Default)]
pub struct CardRuntime {
    pub runtime: String,
    pub about: String,
    pub fallback: Option<String>,
}

impl CardRuntime {
    pub fn of(classifier: &crate::model::Classifier) -> Self {
        Self {
            runtime: classifier.runtime().as_str().to_owned(),
            about: classifier.runtime_about(),
            fallback: classifier.fallback().map(str::to_owned),
        }
    }
}

impl ModelCard {
    pub fn new(manifest: &Manifest, head: &GenreHead, variant: &str, name: &str) -> Self {
        let v = manifest.variants.get(variant);
        let per_genre = head
            .metrics
            .get("per_genre")
            .and_then(|g| g.as_array())
            .cloned()
            .unwrap_or_default();
        let genres = head
            .genres
            .iter()
            .map(|g| CardGenre {
                label: g.label.clone(),
                threshold: g.threshold,
                validation: per_genre
                    .iter()
                    .find(|m| m.get("label").and_then(|l| l.as_str()) == Some(g.label.as_str()))
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect();
        let validation = head
            .metrics
            .get("model")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let validation_precision = validation
            .get("micro_precision")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.5);
        let text =
            |value: Option<&serde_json::Value>| value.and_then(|q| q.as_str()).map(str::to_owned);
        Self {
            name: name.to_owned(),
            backbone: manifest.backbone.name.clone(),
            variant: variant.to_owned(),
            file: v.map(|v| v.file.clone()).unwrap_or_default(),
            file_bytes: v
                .and_then(|v| v.extra.get("bytes"))
                .and_then(serde_json::Value::as_u64),
            sha256: v.map(|v| v.sha256.clone()).unwrap_or_default(),
            quantisation: text(v.and_then(|v| v.extra.get("quantisation"))),
            input_size: manifest.backbone.input_size,
            mean: manifest.backbone.mean,
            std: manifest.backbone.std,
            feature_dim: manifest.backbone.feature_dim,
            labels: head.labels(),
            genres,
            validation,
            baseline: head
                .metrics
                .get("baseline")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            validation_posters: head
                .metrics
                .get("posters")
                .and_then(serde_json::Value::as_u64),
            validation_precision,
            provenance: head.provenance.clone(),
            built_with: text(manifest.backbone.extra.get("built_with")),
            validation_split: text(head.metrics.get("split")),
            head_id: None,
            runtime: String::new(),
            runtime_about: String::new(),
            runtime_fallback: None,
        }
    }

    pub fn thresholds(&self) -> Vec<super::data::GenreThreshold> {
        self.genres
            .iter()
            .map(|g| super::data::GenreThreshold {
                label: g.label.clone(),
                threshold: g.threshold,
            })
            .collect()
    }
}

/// The card of whichever head is active now: rebuilt when a promotion or a
/// rollback changes the active head, otherwise shared.
#[derive(Clone)]
pub struct CardSlot {
    manifest: Arc<Manifest>,
    variant: String,
    runtime: CardRuntime,
    heads: HeadSlot,
    card: Arc<Mutex<Arc<ModelCard>>>,
}

impl CardSlot {
    pub fn new(manifest: Manifest, variant: &str, runtime: CardRuntime, heads: HeadSlot) -> Self {
        let card = card_for(&manifest, variant, &runtime, &heads.active());
        Self {
            manifest: Arc::new(manifest),
            variant: variant.to_owned(),
            runtime,
            heads,
            card: Arc::new(Mutex::new(Arc::new(card))),
        }
    }

    pub fn get(&self) -> Arc<ModelCard> {
        let active = self.heads.active();
        let mut card = self.card.lock().unwrap_or_else(PoisonError::into_inner);
        if card.name != active.name || card.head_id != active.id {
            *card = Arc::new(card_for(
                &self.manifest,
                &self.variant,
                &self.runtime,
                &active,
            ));
        }
        Arc::clone(&card)
    }
}

fn card_for(
    manifest: &Manifest,
    variant: &str,
    runtime: &CardRuntime,
    active: &crate::model::live::LiveHead,
) -> ModelCard {
    let mut card = ModelCard::new(manifest, &active.head, variant, &active.name);
    card.head_id = active.id;
    card.runtime = runtime.runtime.clone();
    card.runtime_about = runtime.about.clone();
    card.runtime_fallback = runtime.fallback.clone();
    card
}
