//! `models/manifest.json`: what the shipped files are and how to feed them.
//!
//! Every file the loader opens is checked against the sha256 recorded here,
//! so a corrupted copy or a head trained for another backbone is refused with
//! a message instead of producing plausible-looking garbage.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::vision::Normalisation;

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid model manifest: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model variant `{0}` is not in the manifest (known: {1})")]
    UnknownVariant(String, String),
    #[error("the manifest has no genre head; train one with `marquee train`")]
    NoHead,
    #[error(
        "checksum mismatch for {path}: manifest says {expected}, file is {actual}; \
         the file is corrupt or does not belong to this manifest (rebuild it or restore models/)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub backbone: BackboneSpec,
    pub default_variant: String,
    pub variants: BTreeMap<String, Variant>,
    /// The variant each runtime runs best (`tract`, `onnxruntime`), used when
    /// no variant is configured; measured in tools/README.md and
    /// docs/onnxruntime.md.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime_variants: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<FileRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// What the device keeps of the shipped training posters (their
    /// features, 8-bit), so a retrain on corrections does not forget the
    /// genres nobody corrected. `marquee train --base-features` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_features: Option<FileRef>,
    /// Everything else (metrics, notes written by the tools) is carried through.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackboneSpec {
    pub name: String,
    pub input_name: String,
    pub input_size: [u32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub feature_output: String,
    pub feature_dim: usize,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variant {
    pub file: String,
    pub sha256: String,
    /// The runtimes that can run this file; empty: every runtime.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtimes: Vec<String>,
    /// This variant's own features of the shipped training posters, when
    /// they are not the manifest's `base_features` (which are another
    /// variant's): a retrain must not mix two feature spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_features: Option<FileRef>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRef {
    pub file: String,
    pub sha256: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ManifestError::Parse { path, source })
    }

    pub fn save(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| ManifestError::Write { path, source })
    }

    pub fn variant(&self, name: Option<&str>) -> Result<(&str, &Variant), ManifestError> {
        let name = name.unwrap_or(&self.default_variant);
        self.variants
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                let known: Vec<&str> = self.variants.keys().map(String::as_str).collect();
                ManifestError::UnknownVariant(name.to_string(), known.join(", "))
            })
    }

    /// The base features for `variant` and the variant they were computed
    /// on: its own, else the manifest's (tagged with their variant; untagged
    /// means the default variant).
    pub fn base_features_for(&self, variant: &str) -> Option<(&FileRef, String)> {
        if let Some(own) = self
            .variants
            .get(variant)
            .and_then(|v| v.base_features.as_ref())
        {
            return Some((own, variant.to_string()));
        }
        self.base_features.as_ref().map(|f| {
            let of = f
                .extra
                .get("variant")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&self.default_variant);
            (f, of.to_string())
        })
    }

    /// Whether `runtime` can run `variant` (the all-QLinearConv file is for
    /// onnxruntime only: tract 0.23's lowering of it overflows).
    pub fn runs_on(&self, variant: &str, runtime: &str) -> bool {
        self.variants
            .get(variant)
            .is_some_and(|v| v.runtimes.is_empty() || v.runtimes.iter().any(|r| r == runtime))
    }

    /// The variant to run on `runtime` when none is asked for.
    pub fn variant_for(&self, runtime: &str) -> &str {
        self.runtime_variants
            .get(runtime)
            .filter(|v| self.variants.contains_key(v.as_str()))
            .unwrap_or(&self.default_variant)
    }

    pub fn normalisation(&self) -> Normalisation {
        Normalisation {
            width: self.backbone.input_size[0],
            height: self.backbone.input_size[1],
            mean: self.backbone.mean,
            std: self.backbone.std,
        }
    }
}

/// Read a file and check its sha256 against the manifest's.
pub fn read_verified(path: &Path, expected: &str) -> Result<Vec<u8>, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(ManifestError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
