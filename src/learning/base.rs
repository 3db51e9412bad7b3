//! What the device keeps of the shipped training posters: their backbone
//! features, 8 bits per value, and their genres, so a retrain on a few
//! hundred corrections still sees every genre the shipped head knew.
//!
//! File layout (little-endian):
//! `MQBASE1\n`, header length (u32), header JSON ([`Header`]), then `dim`
//! f32 offsets and `dim` f32 scales, then per poster: its split (u8: 0 train,
//! 1 calibration), its genres as a bit mask over `labels` (u32), and `dim`
//! u8 codes with `value = offset + scale * code`.
//!
//! Per-feature min/max quantisation loses at most half a step (range / 510)
//! per value: far below what a regularised logistic model can tell apart,
//! and a quarter of the half floats' size.

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"MQBASE1\n";
/// A poster's genres travel as a u32 bit mask.
pub const MAX_LABELS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("the base features file is not one (bad magic): rebuild it with `marquee train --base-features`")]
    Magic,
    #[error("the base features file is cut short or inconsistent: {0}")]
    Format(String),
    #[error("the base features have {found} values per poster, the backbone gives {expected}")]
    Dim { found: usize, expected: usize },
    #[error("more than {MAX_LABELS} genres cannot be stored")]
    TooManyLabels,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub dim: usize,
    pub labels: Vec<String>,
    pub posters: usize,
    /// sha256 of the backbone file the features came from.
    pub backbone: String,
    /// How the posters were chosen (split, seed, sample).
    #[serde(default)]
    pub provenance: serde_json::Value,
}

/// The decoded posters, split as the shipped head was trained.
#[derive(Debug, Clone, Default)]
pub struct BaseSet {
    pub labels: Vec<String>,
    pub train: Vec<(Vec<f32>, Vec<bool>)>,
    pub calibration: Vec<(Vec<f32>, Vec<bool>)>,
}

impl BaseSet {
    pub fn len(&self) -> usize {
        self.train.len() + self.calibration.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One poster to write: features, genres (over the header's labels) and
/// whether it is a calibration poster.
pub struct BaseRow<'a> {
    pub features: &'a [f32],
    pub truth: &'a [bool],
    pub calibration: bool,
}

pub fn encode(header: &Header, rows: &[BaseRow]) -> Result<Vec<u8>, BaseError> {
    if header.labels.len() > MAX_LABELS {
        return Err(BaseError::TooManyLabels);
    }
    let dim = header.dim;
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for r in rows {
        if r.features.len() != dim {
            return Err(BaseError::Dim {
                found: r.features.len(),
                expected: dim,
            });
        }
        for (k, &v) in r.features.iter().enumerate() {
            lo[k] = lo[k].min(v);
            hi[k] = hi[k].max(v);
        }
    }
    let scale: Vec<f32> = lo
        .iter()
        .zip(&hi)
        .map(|(l, h)| if h > l { (h - l) / 255.0 } else { 1.0 })
        .collect();
    let offset: Vec<f32> = lo
        .iter()
        .map(|l| if l.is_finite() { *l } else { 0.0 })
        .collect();
    let json = serde_json::to_vec(header).map_err(|e| BaseError::Format(e.to_string()))?;
    let mut out = Vec::with_capacity(16 + json.len() + dim * 8 + rows.len() * (5 + dim));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&json);
    for v in offset.iter().chain(&scale) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for r in rows {
        out.push(u8::from(r.calibration));
        let mask = r
            .truth
            .iter()
            .enumerate()
            .filter(|(_, &t)| t)
            .fold(0u32, |m, (j, _)| m | (1 << j));
        out.extend_from_slice(&mask.to_le_bytes());
        for (k, &v) in r.features.iter().enumerate() {
            let code = ((v - offset[k]) / scale[k]).round().clamp(0.0, 255.0);
            out.push(code as u8);
        }
    }
    Ok(out)
}

pub fn decode(bytes: &[u8], expected_dim: usize) -> Result<(Header, BaseSet), BaseError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(BaseError::Magic)?;
    let cut = |what: &str| BaseError::Format(format!("{what} missing"));
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| cut("header length"))?;
    let len = u32::from_le_bytes(*len) as usize;
    let (json, rest) = rest.split_at_checked(len).ok_or_else(|| cut("header"))?;
    let header: Header =
        serde_json::from_slice(json).map_err(|e| BaseError::Format(format!("header: {e}")))?;
    if header.dim != expected_dim {
        return Err(BaseError::Dim {
            found: header.dim,
            expected: expected_dim,
        });
    }
    if header.labels.len() > MAX_LABELS {
        return Err(BaseError::TooManyLabels);
    }
    let dim = header.dim;
    let (table, mut rest) = rest
        .split_at_checked(dim * 8)
        .ok_or_else(|| cut("quantisation table"))?;
    let floats: Vec<f32> = table
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (offset, scale) = floats.split_at(dim);
    let row_len = 5 + dim;
    if rest.len() != header.posters * row_len {
        return Err(BaseError::Format(format!(
            "{} bytes of posters for {} posters of {row_len}",
            rest.len(),
            header.posters
        )));
    }
    let mut set = BaseSet {
        labels: header.labels.clone(),
        ..BaseSet::default()
    };
    while let Some((row, tail)) = rest.split_at_checked(row_len) {
        if row.is_empty() {
            break;
        }
        rest = tail;
        let mask = u32::from_le_bytes([row[1], row[2], row[3], row[4]]);
        let truth = (0..header.labels.len())
            .map(|j| mask & (1 << j) != 0)
            .collect();
        let features = row[5..]
            .iter()
            .enumerate()
            .map(|(k, &c)| offset[k] + scale[k] * f32::from(c))
            .collect();
        if row[0] == 1 {
            set.calibration.push((features, truth));
        } else {
            set.train.push((features, truth));
        }
    }
    Ok((header, set))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_within_half_a_step() {
        let feats: Vec<Vec<f32>> = (0..10)
            .map(|i| (0..6).map(|k| (i * k) as f32 * 0.37 - 1.0).collect())
            .collect();
        let truth: Vec<Vec<bool>> = (0..10).map(|i| vec![i % 2 == 0, i % 3 == 0]).collect();
        let rows: Vec<BaseRow> = feats
            .iter()
            .zip(&truth)
            .enumerate()
            .map(|(i, (f, t))| BaseRow {
                features: f,
                truth: t,
                calibration: i >= 8,
            })
            .collect();
        let header = Header {
            dim: 6,
            labels: vec!["A".into(), "B".into()],
            posters: 10,
            backbone: "x".into(),
            provenance: serde_json::Value::Null,
        };
        let bytes = encode(&header, &rows).unwrap();
        let (back, set) = decode(&bytes, 6).unwrap();
        assert_eq!(back.labels, header.labels);
        assert_eq!((set.train.len(), set.calibration.len()), (8, 2));
        assert_eq!(set.train[3].1, truth[3]);
        for (a, b) in set.train[7].0.iter().zip(&feats[7]) {
            assert!((a - b).abs() <= 18.5 * 0.37 / 255.0 + 1e-5, "{a} vs {b}");
        }
        assert!(matches!(decode(&bytes, 7), Err(BaseError::Dim { .. })));
        assert!(matches!(decode(b"nope", 6), Err(BaseError::Magic)));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], 6),
            Err(BaseError::Format(_))
        ));
    }
}
