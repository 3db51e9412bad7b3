//! A head as a file, so one device's learning can be put on the others of a
//! fleet: the head itself (as the exact JSON text its checksum covers), the
//! backbone file and feature layout it was trained on, its labels, and its
//! figures.
//!
//! A file is refused, and nothing changes, when its checksum does not match
//! its head, or its backbone, feature width or genres are not this device's:
//! its weights would be applied to features they were never fitted on.

use serde::{Deserialize, Serialize};

use crate::model::head::GenreHead;
use crate::model::manifest::sha256_hex;

pub const HEAD_FILE_FORMAT: &str = "marquee-head/1";
/// A head file at most (the shipped 19 x 1712 head is ~0.5 MB as JSON).
pub const MAX_HEAD_FILE_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadFile {
    pub format: String,
    /// The backbone it runs on, e.g. `efficientnet-lite0-int8`.
    pub backbone: String,
    /// sha256 of that backbone's ONNX file.
    pub backbone_sha256: String,
    pub feature_dim: usize,
    /// Where each slice of the feature vector comes from (the manifest's).
    #[serde(default)]
    pub feature_layout: serde_json::Value,
    pub labels: Vec<String>,
    /// sha256 of `head`, the text exactly as written.
    pub sha256: String,
    /// The `GenreHead` as JSON text.
    pub head: String,
    pub origin: String,
    pub corrections: u64,
    pub base_posters: u64,
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// `device_id` and head id it was exported from.
    pub exported_from: String,
    pub created_at_ms: i64,
}

/// What this device runs, that a head file must match.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub backbone_sha256: &'a str,
    pub feature_dim: usize,
    pub labels: &'a [String],
}

#[derive(Debug, thiserror::Error)]
pub enum HeadFileError {
    #[error("not a Marquee head file: {0}")]
    Parse(String),
    #[error("the head file is format `{0}`; this Marquee reads `{HEAD_FILE_FORMAT}`")]
    Format(String),
    #[error(
        "the head's checksum does not match its content (file says {expected}, content is \
         {actual}): the file is damaged or was edited; export it again"
    )]
    Checksum { expected: String, actual: String },
    #[error(
        "the head was trained on another backbone ({found}); this device runs {expected}: \
         its weights would not fit these features"
    )]
    Backbone { found: String, expected: String },
    #[error("the head takes {found} features; this device's backbone gives {expected}")]
    FeatureDim { found: usize, expected: usize },
    #[error("the head's genres ({found}) do not start with this device's ({expected})")]
    Labels { found: String, expected: String },
    #[error("the head inside the file is not valid: {0}")]
    Head(String),
}

impl HeadFile {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parse and check everything; the head is returned only if it fits.
    pub fn check(bytes: &[u8], expect: &Expect) -> Result<(HeadFile, GenreHead), HeadFileError> {
        let file: HeadFile =
            serde_json::from_slice(bytes).map_err(|e| HeadFileError::Parse(e.to_string()))?;
        if file.format != HEAD_FILE_FORMAT {
            return Err(HeadFileError::Format(file.format));
        }
        let actual = sha256_hex(file.head.as_bytes());
        if !actual.eq_ignore_ascii_case(&file.sha256) {
            return Err(HeadFileError::Checksum {
                expected: file.sha256,
                actual,
            });
        }
        if !file
            .backbone_sha256
            .eq_ignore_ascii_case(expect.backbone_sha256)
        {
            return Err(HeadFileError::Backbone {
                found: format!("{} {}", file.backbone, file.backbone_sha256),
                expected: expect.backbone_sha256.to_string(),
            });
        }
        let head = GenreHead::from_json(file.head.as_bytes(), "the head file")
            .map_err(|e| HeadFileError::Head(e.to_string()))?;
        for found in [file.feature_dim, head.feature_dim] {
            if found != expect.feature_dim {
                return Err(HeadFileError::FeatureDim {
                    found,
                    expected: expect.feature_dim,
                });
            }
        }
        // The shipped genres first; genres another device added may follow.
        for found in [&file.labels, &head.labels()] {
            if !found.starts_with(expect.labels) || file.labels != head.labels() {
                return Err(HeadFileError::Labels {
                    found: found.join(", "),
                    expected: expect.labels.join(", "),
                });
            }
        }
        Ok((file, head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::head::{GenreModel, HEAD_FORMAT};

    fn head() -> GenreHead {
        GenreHead {
            format: HEAD_FORMAT,
            trained_on_backbone: "b".repeat(64),
            feature_dim: 2,
            feature_mean: vec![0.0; 2],
            feature_std: vec![1.0; 2],
            genres: vec![GenreModel {
                label: "Drama".into(),
                bias: 0.0,
                weights: vec![1.0, -1.0],
                platt_a: 1.0,
                platt_b: 0.0,
                threshold: 0.5,
            }],
            provenance: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            seen_ids: vec![],
        }
    }

    fn file() -> HeadFile {
        let text = serde_json::to_string(&head()).unwrap();
        HeadFile {
            format: HEAD_FILE_FORMAT.into(),
            backbone: "lite0-int8".into(),
            backbone_sha256: "b".repeat(64),
            feature_dim: 2,
            feature_layout: serde_json::Value::Null,
            labels: vec!["Drama".into()],
            sha256: sha256_hex(text.as_bytes()),
            head: text,
            origin: "retrain".into(),
            corrections: 1,
            base_posters: 0,
            metrics: serde_json::Value::Null,
            exported_from: "dev/3".into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let labels = vec!["Drama".to_string()];
        let sha = "b".repeat(64);
        let expect = Expect {
            backbone_sha256: &sha,
            feature_dim: 2,
            labels: &labels,
        };
        assert!(HeadFile::check(&file().to_bytes(), &expect).is_ok());

        let mut f = file();
        f.head = f.head.replace("0.5", "0.25");
        let err = HeadFile::check(&f.to_bytes(), &expect).unwrap_err();
        assert!(matches!(err, HeadFileError::Checksum { .. }), "{err}");

        let other = "c".repeat(64);
        let err = HeadFile::check(
            &file().to_bytes(),
            &Expect {
                backbone_sha256: &other,
                ..expect.clone()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HeadFileError::Backbone { .. }), "{err}");

        let err = HeadFile::check(
            &file().to_bytes(),
            &Expect {
                feature_dim: 3,
                ..expect.clone()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HeadFileError::FeatureDim { .. }), "{err}");

        let two = vec!["Drama".to_string(), "Comedy".to_string()];
        let err = HeadFile::check(
            &file().to_bytes(),
            &Expect {
                labels: &two,
                ..expect.clone()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HeadFileError::Labels { .. }), "{err}");
        assert!(matches!(
            HeadFile::check(b"{}", &expect),
            Err(HeadFileError::Parse(_))
        ));
    }
}
