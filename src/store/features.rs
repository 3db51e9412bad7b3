//! Backbone features kept per poster: half floats, little-endian.

use super::error::{Context, StoreError};
use super::Store;
use crate::poster::PosterId;
use half::f16;
use rusqlite::params;

/// `values` as little-endian IEEE half floats.
pub(crate) fn encode(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect()
}

/// The inverse of [`encode`]; `None` when the length is odd.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|pair| f16::from_le_bytes([pair[0], pair[1]]).to_f32())
            .collect(),
    )
}

/// One poster's stored features.
#[derive(Debug, Clone, PartialEq)]
pub struct PosterFeatures {
    pub poster_id: PosterId,
    pub model: String,
    pub values: Vec<f32>,
}

impl Store {
    /// The features of the newest `limit` posters whose features came from
    /// a backbone giving `dim` values (features of an older model with another
    /// width cannot be mapped together with the current ones), newest first.
    pub fn recent_features(
        &self,
        dim: usize,
        limit: usize,
    ) -> Result<Vec<PosterFeatures>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT f.poster_id, f.model, f.data FROM features f
                 JOIN posters p ON p.id = f.poster_id
                 WHERE f.dim = ?1
                 ORDER BY p.last_seen DESC, p.id LIMIT ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![dim as i64, limit as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
            })
            .ctx("reading poster features")?;
        rows.into_iter()
            .map(|(id, model, data)| {
                let values = decode(&data).ok_or_else(|| StoreError::Corrupt {
                    what: "features",
                    key: id.clone(),
                    detail: "odd byte length".into(),
                })?;
                Ok(PosterFeatures {
                    poster_id: PosterId::parse(&id)?,
                    model,
                    values,
                })
            })
            .collect()
    }

    /// How many posters have features of width `dim`.
    pub fn count_features(&self, dim: usize) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM features WHERE dim = ?1")
            .and_then(|mut stmt| stmt.query_row([dim as i64], |row| row.get::<_, i64>(0)))
            .ctx("counting poster features")
            .map(|n| u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_float_round_trip_is_close() {
        let values = [0.0_f32, 1.0, -2.5, 0.123_456, 6.0, 1e-3];
        let back = super::decode(&super::encode(&values)).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-6, "{a} vs {b}");
        }
        assert!(super::decode(&[1, 2, 3]).is_none());
    }
}
