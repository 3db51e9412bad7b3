//! The poster map: backbone features reduced to 2-D with linfa's PCA,
//! clustered with k-means, and the posters far from every cluster flagged
//! (frames that do not look like the posters the device usually sees: a
//! blank wall, a hand, a screen glare).

use crate::poster::PosterId;
use crate::store::PosterFeatures;
use linfa::prelude::*;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use linfa_reduction::Pca;
use ndarray::{Array2, Axis};
use serde::Serialize;
use utoipa::ToSchema;

/// Posters drawn on the map at most (the newest); PCA's cost grows with it.
pub const MAP_MAX_POSTERS: usize = 3000;
/// Dimensions k-means and the outlier test work in: enough to keep the
/// structure PCA finds, few enough to be fast and not all noise.
const CLUSTER_DIMS: usize = 10;
/// Sample posters shown per cluster.
const SAMPLES: usize = 3;
/// A poster further from its centroid than median + this many robust
/// deviations (MAD) is an outlier.
const OUTLIER_MADS: f64 = 3.5;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct MapPoint {
    pub poster_id: PosterId,
    pub x: f64,
    pub y: f64,
    pub cluster: usize,
    /// Distance to its cluster's centre in robust standard deviations.
    pub outlier_score: f64,
    pub outlier: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Cluster {
    pub id: usize,
    pub size: usize,
    /// The posters nearest the centre, most typical first.
    pub samples: Vec<PosterId>,
    /// Centre on the map.
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct PosterMap {
    pub posters: usize,
    /// Share of the features' variance the two map axes keep.
    pub explained_variance: [f64; 2],
    pub points: Vec<MapPoint>,
    pub clusters: Vec<Cluster>,
    pub outliers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("the map needs at least {needed} posters with features; the store has {have}")]
    TooFew { needed: usize, have: usize },
    #[error("posters have features of different widths ({0} and {1}); classify them again with one model")]
    MixedWidths(usize, usize),
    #[error("PCA failed: {0}")]
    Pca(String),
    #[error("k-means failed: {0}")]
    KMeans(String),
}

/// How many clusters for `n` posters: about one per 40, from 2 to 8.
pub fn cluster_count(n: usize) -> usize {
    (n / 40).clamp(2, 8)
}

/// The fewest posters a map is computed for.
pub const MIN_POSTERS: usize = 8;

/// Compute the map. Deterministic: linfa's PCA and k-means use fixed seeds.
pub fn compute(features: &[PosterFeatures]) -> Result<PosterMap, MapError> {
    let n = features.len();
    if n < MIN_POSTERS {
        return Err(MapError::TooFew {
            needed: MIN_POSTERS,
            have: n,
        });
    }
    let dim = features[0].values.len();
    if let Some(other) = features.iter().find(|f| f.values.len() != dim) {
        return Err(MapError::MixedWidths(dim, other.values.len()));
    }
    let mut x = Array2::<f64>::zeros((n, dim));
    for (mut row, f) in x.axis_iter_mut(Axis(0)).zip(features) {
        for (cell, &v) in row.iter_mut().zip(&f.values) {
            *cell = f64::from(v);
        }
    }
    // Standardised: the feature layout mixes layers with very different
    // scales, and the largest would otherwise decide the whole map.
    let mean = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| ndarray::Array1::zeros(dim));
    let std = x
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-9 { s } else { 1.0 });
    x -= &mean;
    x /= &std;

    let dims = CLUSTER_DIMS.min(n - 1).min(dim).max(2);
    let dataset = DatasetBase::from(x);
    let pca = Pca::params(dims)
        .fit(&dataset)
        .map_err(|e| MapError::Pca(e.to_string()))?;
    let ratio = pca.explained_variance_ratio();
    let reduced: Array2<f64> = pca.predict(&dataset);

    let k = cluster_count(n).min(n);
    let clustered = DatasetBase::from(reduced.clone());
    let kmeans = KMeans::params(k)
        .max_n_iterations(200)
        .tolerance(1e-4)
        .fit(&clustered)
        .map_err(|e| MapError::KMeans(e.to_string()))?;
    let assignment = kmeans.predict(&clustered);
    let centroids = kmeans.centroids();

    let distances: Vec<f64> = reduced
        .axis_iter(Axis(0))
        .zip(assignment.iter())
        .map(|(row, &c)| {
            row.iter()
                .zip(centroids.row(c))
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let median = median(&distances);
    let mad = median_abs_deviation(&distances, median).max(1e-9);

    let points: Vec<MapPoint> = features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let score = (distances[i] - median) / (1.4826 * mad);
            MapPoint {
                poster_id: f.poster_id.clone(),
                x: reduced[[i, 0]],
                y: reduced[[i, 1]],
                cluster: assignment[i],
                outlier_score: score,
                outlier: score > OUTLIER_MADS,
            }
        })
        .collect();
    let clusters = (0..k)
        .map(|c| {
            let mut members: Vec<usize> = (0..n).filter(|&i| assignment[i] == c).collect();
            members.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]));
            let (sx, sy) = members.iter().fold((0.0, 0.0), |(sx, sy), &i| {
                (sx + reduced[[i, 0]], sy + reduced[[i, 1]])
            });
            let size = members.len();
            Cluster {
                id: c,
                size,
                samples: members
                    .iter()
                    .take(SAMPLES)
                    .map(|&i| features[i].poster_id.clone())
                    .collect(),
                x: if size > 0 { sx / size as f64 } else { 0.0 },
                y: if size > 0 { sy / size as f64 } else { 0.0 },
            }
        })
        .collect();
    let outliers = points.iter().filter(|p| p.outlier).count();
    Ok(PosterMap {
        posters: n,
        explained_variance: [
            ratio.get(0).copied().unwrap_or(0.0),
            ratio.get(1).copied().unwrap_or(0.0),
        ],
        points,
        clusters,
        outliers,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

fn median_abs_deviation(values: &[f64], center: f64) -> f64 {
    let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    median(&deviations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(seed: u64, centre: f32, n: usize, dim: usize) -> Vec<PosterFeatures> {
        // A small deterministic generator: no rand dependency for a test.
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        (0..n)
            .map(|i| PosterFeatures {
                poster_id: PosterId::of_bytes(format!("{seed}-{i}").as_bytes()),
                model: "test".into(),
                values: (0..dim)
                    .map(|d| if d % 2 == 0 { centre } else { -centre } + 0.3 * next())
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn two_blobs_give_two_clusters() {
        let mut features = blob(1, 1.0, 40, 16);
        features.extend(blob(2, -1.0, 40, 16));
        let map = compute(&features).unwrap();
        assert_eq!(map.posters, 80);
        assert_eq!(map.clusters.len(), 2);
        let first = map.points[0].cluster;
        assert!(map.points[..40].iter().all(|p| p.cluster == first));
        assert!(map.points[40..].iter().all(|p| p.cluster != first));
        assert_eq!(map.outliers, 0, "tight blobs have no outlier");
        // Deterministic.
        assert_eq!(compute(&features).unwrap(), map);
    }

    #[test]
    fn a_poster_unlike_the_rest_is_an_outlier() {
        let mut features = blob(1, 1.0, 40, 16);
        features.extend(blob(2, -1.0, 40, 16));
        let mut odd = blob(3, 0.0, 1, 16);
        // Off the axis the two blobs lie on.
        odd[0].values = (0..16).map(|d| if d < 8 { 2.5 } else { -2.5 }).collect();
        features.extend(odd.clone());
        let map = compute(&features).unwrap();
        let last = map.points.last().unwrap();
        assert_eq!(last.poster_id, odd[0].poster_id);
        assert!(last.outlier, "score {}", last.outlier_score);
        assert!(map.outliers >= 1 && map.outliers < 5, "{}", map.outliers);
    }

    #[test]
    fn too_few_posters_is_a_clear_error() {
        let err = compute(&blob(1, 1.0, 3, 4)).unwrap_err();
        assert!(err.to_string().contains("at least 8"), "{err}");
    }
}
