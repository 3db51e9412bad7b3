//! The genre head: one calibrated logistic model per genre over the
//! backbone's pooled features.
//!
//! Inference is a dot product per genre and needs no ML crate; training
//! (in `training.rs`) uses linfa.

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::manifest::ManifestError;

pub const HEAD_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error(transparent)]
    File(#[from] ManifestError),
    #[error("{0} is not a valid genre head: {1}")]
    Parse(String, serde_json::Error),
    #[error("genre head is inconsistent: {0}")]
    Invalid(String),
}

/// One genre's model. `score = sigmoid(platt_a * (w . z + bias) + platt_b)` with
/// `z` the standardised features; `platt_*` were fitted on the calibration split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenreModel {
    pub label: String,
    pub bias: f32,
    pub weights: Vec<f32>,
    pub platt_a: f32,
    pub platt_b: f32,
    /// Calibrated score at or above which the genre becomes a tag.
    pub threshold: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenreHead {
    pub format: u32,
    /// sha256 of the backbone file whose features the head was trained on.
    pub trained_on_backbone: String,
    pub feature_dim: usize,
    pub feature_mean: Vec<f32>,
    pub feature_std: Vec<f32>,
    pub genres: Vec<GenreModel>,
    /// How it was built: data, split, seed, hyper-parameters, timings.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Metrics on the held-out validation split, as printed by `marquee eval`.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Poster ids used for training and calibration, so `eval` can leave them out.
    #[serde(default)]
    pub seen_ids: Vec<String>,
}

impl GenreHead {
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<Self, HeadError> {
        let head: GenreHead =
            serde_json::from_slice(bytes).map_err(|e| HeadError::Parse(origin.to_string(), e))?;
        head.validate()?;
        Ok(head)
    }

    pub fn load(path: &Path) -> Result<Self, HeadError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&bytes, &path.display().to_string())
    }

    pub fn validate(&self) -> Result<(), HeadError> {
        if self.format != HEAD_FORMAT {
            return Err(HeadError::Invalid(format!(
                "format {} is not the supported {HEAD_FORMAT}",
                self.format
            )));
        }
        let d = self.feature_dim;
        if self.feature_mean.len() != d || self.feature_std.len() != d {
            return Err(HeadError::Invalid("standardisation size".into()));
        }
        if self.genres.is_empty() {
            return Err(HeadError::Invalid("no genres".into()));
        }
        for g in &self.genres {
            if g.weights.len() != d {
                return Err(HeadError::Invalid(format!(
                    "{} has {} weights for {d} features",
                    g.label,
                    g.weights.len()
                )));
            }
            let finite = g.weights.iter().all(|w| w.is_finite())
                && [g.bias, g.platt_a, g.platt_b, g.threshold]
                    .iter()
                    .all(|v| v.is_finite());
            if !finite {
                return Err(HeadError::Invalid(format!(
                    "{} has non-finite values",
                    g.label
                )));
            }
        }
        if self
            .feature_std
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(HeadError::Invalid("non-positive feature std".into()));
        }
        Ok(())
    }

    pub fn labels(&self) -> Vec<String> {
        self.genres.iter().map(|g| g.label.clone()).collect()
    }

    /// Calibrated probability of each genre, in `genres` order.
    pub fn scores(&self, features: &[f32]) -> Vec<f32> {
        let z: Vec<f32> = features
            .iter()
            .zip(self.feature_mean.iter().zip(&self.feature_std))
            .map(|(x, (m, s))| (x - m) / s)
            .collect();
        self.genres
            .iter()
            .map(|g| {
                let logit: f32 = g.weights.iter().zip(&z).map(|(w, x)| w * x).sum::<f32>() + g.bias;
                sigmoid(g.platt_a * logit + g.platt_b)
            })
            .collect()
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
