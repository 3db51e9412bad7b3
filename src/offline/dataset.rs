//! Labelled poster sets in the `../shared/data` format: `id,genres` with
//! genres joined by `|`, images at `<images>/<id>.jpg`.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read the poster list {path}: {source} (the labelled posters live in ../shared/data; pass --data and --images)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("the images folder {0} does not exist (pass --images DIR)")]
    NoImages(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub id: String,
    pub genres: Vec<String>,
    pub image: PathBuf,
}

/// Which part of the data a poster belongs to. Decided by a hash of its id,
/// so the split does not depend on the file's order or on other posters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Fits the per-genre logistic models.
    Train,
    /// Fits the calibration and tunes the thresholds.
    Calibration,
    /// Held out: only ever used to measure.
    Validation,
}

pub const SPLIT_SALT: &str = "marquee-split-v1";

/// `seed` reshuffles which posters land in which split (0 is the shipped one).
pub fn split_of(id: &str, seed: u64) -> Split {
    let digest = Sha256::digest(format!("{SPLIT_SALT}:{seed}:{id}").as_bytes());
    let bucket = u16::from_be_bytes([digest[0], digest[1]]) % 100;
    match bucket {
        0..=69 => Split::Train,
        70..=84 => Split::Calibration,
        _ => Split::Validation,
    }
}

pub fn read_csv(csv: &Path, images: &Path) -> Result<Vec<Labelled>, DatasetError> {
    let text = std::fs::read_to_string(csv).map_err(|source| DatasetError::Read {
        path: csv.to_path_buf(),
        source,
    })?;
    if !images.is_dir() {
        return Err(DatasetError::NoImages(images.to_path_buf()));
    }
    parse_csv(&text, csv, images)
}

pub fn parse_csv(text: &str, csv: &Path, images: &Path) -> Result<Vec<Labelled>, DatasetError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("id,")) {
            continue;
        }
        let (id, genres) = line.split_once(',').ok_or_else(|| DatasetError::Format {
            path: csv.to_path_buf(),
            line: n + 1,
            message: "expected `id,Genre|Genre`".into(),
        })?;
        let id = id.trim().trim_matches('"');
        if id.is_empty() || id.contains(['/', '\\']) {
            return Err(DatasetError::Format {
                path: csv.to_path_buf(),
                line: n + 1,
                message: format!("bad poster id `{id}`"),
            });
        }
        let genres = genres
            .trim()
            .trim_matches('"')
            .split('|')
            .map(str::trim)
            .filter(|g| !g.is_empty() && *g != "N/A")
            .map(str::to_string)
            .collect();
        out.push(Labelled {
            id: id.to_string(),
            genres,
            image: images.join(format!("{id}.jpg")),
        });
    }
    Ok(out)
}

/// Genres with at least `min_count` posters, most frequent first (ties by name).
pub fn frequent_genres(posters: &[Labelled], min_count: usize) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in posters {
        for g in &p.genres {
            *counts.entry(g).or_default() += 1;
        }
    }
    let mut genres: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= min_count)
        .collect();
    genres.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    genres.into_iter().map(|(g, _)| g.to_string()).collect()
}

/// One row of booleans per poster, one column per label.
pub fn label_matrix(posters: &[Labelled], labels: &[String]) -> Vec<Vec<bool>> {
    posters
        .iter()
        .map(|p| labels.iter().map(|l| p.genres.contains(l)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shared_format() {
        let text = "id,genres\ntt1,Drama|Romance\ntt2,Horror\n\ntt3,N/A\n";
        let rows = parse_csv(text, Path::new("x.csv"), Path::new("img")).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].genres, vec!["Drama", "Romance"]);
        assert_eq!(rows[1].image, Path::new("img/tt2.jpg"));
        assert!(rows[2].genres.is_empty());
    }

    #[test]
    fn rejects_path_tricks_and_missing_columns() {
        assert!(parse_csv("../etc,Drama\n", Path::new("x"), Path::new("i")).is_err());
        assert!(parse_csv("tt1\n", Path::new("x"), Path::new("i")).is_err());
    }

    #[test]
    fn split_is_stable_and_roughly_70_15_15() {
        assert_eq!(split_of("tt0084058", 0), split_of("tt0084058", 0));
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            match split_of(&format!("tt{i:07}"), 0) {
                Split::Train => counts[0] += 1,
                Split::Calibration => counts[1] += 1,
                Split::Validation => counts[2] += 1,
            }
        }
        assert!((6700..7300).contains(&counts[0]), "{counts:?}");
        assert!((1300..1700).contains(&counts[1]), "{counts:?}");
        assert!((1300..1700).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn frequent_genres_are_ordered_by_count() {
        let rows = parse_csv(
            "tt1,A|B\ntt2,B\ntt3,B|C\ntt4,A\n",
            Path::new("x"),
            Path::new("i"),
        )
        .unwrap();
        assert_eq!(frequent_genres(&rows, 2), vec!["B", "A"]);
    }
}
