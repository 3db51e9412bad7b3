//! Backbone features for labelled posters, cached on disk so that training
//! and evaluation after the first run take seconds, not minutes.
//!
//! The cache file is per backbone file (named by its sha256) and keyed by the
//! sha256 of each image's bytes: a changed image or a rebuilt backbone never
//! reuses a stale vector. Records are appended as they are computed, so an
//! interrupted run keeps what it had done.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::backbone::{Backbone, RuntimeKind};
use crate::offline::dataset::Labelled;
use crate::vision::{self, DecodeLimits, Normalisation};

const MAGIC: &[u8; 8] = b"MQFEAT01";

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("feature cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("feature cache {0} is not a Marquee feature cache (delete it to rebuild)")]
    Format(PathBuf),
}

pub struct FeatureCache {
    path: PathBuf,
    dim: usize,
    entries: HashMap<[u8; 32], Vec<f32>>,
    writer: Option<BufWriter<File>>,
}

/// The default cache folder: `MARQUEE_CACHE_DIR`, else `~/.cache/marquee/features`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARQUEE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("marquee").join("features")
}

impl FeatureCache {
    /// One cache per backbone file and runtime: tract and onnxruntime agree
    /// on a file closely, not exactly, and figures must say which ran.
    pub fn open(
        dir: &Path,
        backbone_sha256: &str,
        runtime: RuntimeKind,
        dim: usize,
    ) -> Result<Self, FeatureError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FeatureError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let short = &backbone_sha256[..backbone_sha256.len().min(16)];
        let path = match runtime {
            RuntimeKind::Tract => dir.join(format!("{short}-{dim}.bin")),
            other => dir.join(format!("{short}-{dim}-{}.bin", other.as_str())),
        };
        let mut entries = HashMap::new();
        if path.exists() {
            let mut reader = BufReader::new(File::open(&path).map_err(io(&path))?);
            let mut magic = [0u8; 8];
            reader.read_exact(&mut magic).map_err(io(&path))?;
            if &magic != MAGIC {
                return Err(FeatureError::Format(path));
            }
            let mut record = vec![0u8; 32 + dim * 4];
            // A short last record is what an interrupted run leaves: ignore it.
            while reader.read_exact(&mut record).is_ok() {
                let mut key = [0u8; 32];
                key.copy_from_slice(&record[..32]);
                let values = record[32..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                entries.insert(key, values);
            }
        }
        Ok(Self {
            path,
            dim,
            entries,
            writer: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<&Vec<f32>> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, key: [u8; 32], values: Vec<f32>) -> Result<(), FeatureError> {
        if values.len() != self.dim {
            return Err(FeatureError::Format(self.path.clone()));
        }
        if self.writer.is_none() {
            let fresh = !self.path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|source| FeatureError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            let mut writer = BufWriter::new(file);
            if fresh {
                writer.write_all(MAGIC).map_err(|source| FeatureError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            }
            self.writer = Some(writer);
        }
        if let Some(w) = self.writer.as_mut() {
            let mut buf = Vec::with_capacity(32 + values.len() * 4);
            buf.extend_from_slice(&key);
            for v in &values {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf).map_err(|source| FeatureError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        self.entries.insert(key, values);
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), FeatureError> {
        if let Some(w) = self.writer.as_mut() {
            w.flush().map_err(|source| FeatureError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Features (or the reason there are none) for each poster, in input order.
pub type Extracted = Vec<Outcome>;
pub type Outcome = Result<Vec<f32>, String>;

/// Compute features for `posters` on `threads` threads, reusing the cache.
/// `progress` is called with (done, total) now and then.
pub fn extract(
    posters: &[Labelled],
    backbone: &Backbone,
    norm: &Normalisation,
    cache: &mut FeatureCache,
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Extracted, FeatureError> {
    let total = posters.len();
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; total]);
    let fresh: Mutex<Vec<([u8; 32], Vec<f32>)>> = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let limits = DecodeLimits::default();
    let cache_ref = &*cache;
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let outcome = match std::fs::read(&posters[i].image) {
                    Err(e) => Err(format!("{}: {e}", posters[i].image.display())),
                    Ok(bytes) => {
                        let key: [u8; 32] = Sha256::digest(&bytes).into();
                        match cache_ref.get(&key) {
                            Some(v) => Ok(v.clone()),
                            None => compute(&bytes, backbone, norm, &limits).inspect(|v| {
                                if let Ok(mut f) = fresh.lock() {
                                    f.push((key, v.clone()));
                                }
                            }),
                        }
                    }
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if d.is_multiple_of(250) || d == total {
                    progress(d, total);
                }
            });
        }
    });
    for (key, values) in fresh.into_inner().unwrap_or_default() {
        cache.insert(key, values)?;
    }
    cache.flush()?;
    Ok(results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not processed".into())))
        .collect())
}

fn compute(
    bytes: &[u8],
    backbone: &Backbone,
    norm: &Normalisation,
    limits: &DecodeLimits,
) -> Result<Vec<f32>, String> {
    let image = vision::decode(bytes, limits).map_err(|e| e.to_string())?;
    crate::model::features_of(backbone, norm, &image).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_survives_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = FeatureCache::open(dir.path(), "abcdef", RuntimeKind::Tract, 3).unwrap();
            c.insert([1; 32], vec![1.0, 2.0, 3.0]).unwrap();
            c.insert([2; 32], vec![4.0, 5.0, 6.0]).unwrap();
            c.flush().unwrap();
        }
        let path = FeatureCache::open(dir.path(), "abcdef", RuntimeKind::Tract, 3)
            .unwrap()
            .path()
            .to_path_buf();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9; 10]).unwrap();
        let c = FeatureCache::open(dir.path(), "abcdef", RuntimeKind::Tract, 3).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&[2; 32]).unwrap(), &vec![4.0, 5.0, 6.0]);
    }
}
