//! The poster map behind `/map`, cached: computing it takes seconds with
//! thousands of posters.

use super::{latest_all, DataError};
use crate::analytics::map::{self, PosterMap, MAP_MAX_POSTERS};
use crate::poster::now_ms;
use crate::web::WebState;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;
use utoipa::ToSchema;

/// The map is recomputed when this share of posters is new...
const MAP_STALE_SHARE: f64 = 0.1;
/// ...or when it is older than this and anything is new.
const MAP_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The poster map with what each cluster is mostly tagged as.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MapView {
    #[serde(flatten)]
    pub map: PosterMap,
    /// Per cluster (same order as `clusters`): its most common tags.
    pub cluster_genres: Vec<Vec<String>>,
    /// Posters with features in the store (the map shows the newest ones).
    pub posters_with_features: u64,
    /// Milliseconds the last computation took.
    pub compute_ms: u64,
    /// Unix ms when it was computed.
    pub computed_at_ms: i64,
}

/// The last computed map: computing it takes seconds with thousands of
/// posters, so pages serve this copy and refresh it in the background.
#[derive(Clone, Default)]
pub struct MapCache {
    inner: Arc<MapCacheInner>,
}

#[derive(Default)]
struct MapCacheInner {
    current: tokio::sync::Mutex<Option<(Arc<MapView>, Instant, u64)>>,
    refreshing: AtomicBool,
}

/// The map, or why there is none yet.
pub enum MapAnswer {
    Ready(Arc<MapView>),
    TooFew { have: u64, needed: usize },
}

pub async fn poster_map(state: &WebState) -> Result<MapAnswer, DataError> {
    let dim = state.model.get().feature_dim;
    let count = state.reader.read(move |s| s.count_features(dim)).await?;
    if (count as usize) < map::MIN_POSTERS {
        return Ok(MapAnswer::TooFew {
            have: count,
            needed: map::MIN_POSTERS,
        });
    }
    let cache = &state.map.inner;
    let mut current = cache.current.lock().await;
    if let Some((view, at, for_count)) = current.as_ref() {
        let new = count.saturating_sub(*for_count);
        let stale = (new as f64) > (*for_count as f64) * MAP_STALE_SHARE
            || (new > 0 && at.elapsed() > MAP_MAX_AGE);
        if stale && !cache.refreshing.swap(true, Ordering::SeqCst) {
            let state = state.clone();
            tokio::spawn(async move {
                match compute_map(&state).await {
                    Ok((view, n)) => {
                        *state.map.inner.current.lock().await =
                            Some((Arc::new(view), Instant::now(), n));
                    }
                    Err(err) => warn!(error = %err, "refreshing the poster map failed"),
                }
                state.map.inner.refreshing.store(false, Ordering::SeqCst);
            });
        }
        return Ok(MapAnswer::Ready(Arc::clone(view)));
    }
    // First request: compute while holding the lock, so concurrent first
    // requests wait for one computation instead of starting several.
    let (view, n) = compute_map(state).await?;
    let view = Arc::new(view);
    *current = Some((Arc::clone(&view), Instant::now(), n));
    Ok(MapAnswer::Ready(view))
}

async fn compute_map(state: &WebState) -> Result<(MapView, u64), DataError> {
    let dim = state.model.get().feature_dim;
    let started = Instant::now();
    let latest = latest_all(state).await?;
    let (features, count) = state
        .reader
        .read(move |s| {
            Ok((
                s.recent_features(dim, MAP_MAX_POSTERS)?,
                s.count_features(dim)?,
            ))
        })
        .await?;
    let computed = tokio::task::spawn_blocking(move || map::compute(&features))
        .await
        .map_err(|e| DataError::Unavailable(format!("the map computation panicked: {e}")))?
        .map_err(|e| DataError::Unavailable(e.to_string()))?;
    let tags: HashMap<&str, &Vec<String>> = latest
        .iter()
        .map(|r| (r.poster_id.as_str(), &r.tags))
        .collect();
    let cluster_genres = computed
        .clusters
        .iter()
        .map(|c| {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for p in computed.points.iter().filter(|p| p.cluster == c.id) {
                for t in tags
                    .get(p.poster_id.as_str())
                    .into_iter()
                    .flat_map(|v| v.iter())
                {
                    *counts.entry(t.as_str()).or_default() += 1;
                }
            }
            let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            ranked
                .into_iter()
                .take(3)
                .map(|(t, _)| t.to_owned())
                .collect()
        })
        .collect();
    Ok((
        MapView {
            map: computed,
            cluster_genres,
            posters_with_features: count,
            compute_ms: started.elapsed().as_millis() as u64,
            computed_at_ms: now_ms(),
        },
        count,
    ))
}
