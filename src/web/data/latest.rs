//! Each poster's latest classification, cached between requests.

use super::DataError;
use crate::poster::PosterId;
use crate::store::ClassificationRecord;
use crate::web::WebState;
use std::collections::HashMap;
use std::sync::Arc;

/// Each poster's latest classification, kept between requests and caught
/// up with only the rows added since: decoding every stored classification
/// on each page view is what made `/insights` and `/impact` slow with
/// 10,000 posters. Reloaded in full when rows were deleted (retention).
#[derive(Clone, Default)]
pub struct LatestCache {
    inner: Arc<tokio::sync::Mutex<Option<LatestState>>>,
}

struct LatestState {
    count: u64,
    min_id: i64,
    max_id: i64,
    by_poster: HashMap<PosterId, ClassificationRecord>,
    sorted: Arc<Vec<ClassificationRecord>>,
}

impl LatestState {
    fn rebuild(&mut self) {
        let mut rows: Vec<ClassificationRecord> = self.by_poster.values().cloned().collect();
        rows.sort_by_key(|r| r.id);
        self.sorted = Arc::new(rows);
    }
}

/// Each poster's latest classification, oldest first.
pub async fn latest_all(state: &WebState) -> Result<Arc<Vec<ClassificationRecord>>, DataError> {
    let mut guard = state.latest.inner.lock().await;
    let (count, min_id, max_id) = state.reader.read(|s| s.classification_bounds()).await?;
    if let Some(cached) = guard.as_mut() {
        if cached.max_id == max_id && cached.count == count && cached.min_id == min_id {
            return Ok(Arc::clone(&cached.sorted));
        }
        let appended_only = cached.min_id == min_id || cached.count == 0;
        if appended_only && max_id > cached.max_id {
            let after = cached.max_id;
            let new = state
                .reader
                .read(move |s| s.classifications_after(after))
                .await?;
            if cached.count + new.len() as u64 == count {
                cached.max_id = new.last().map_or(cached.max_id, |r| r.id);
                cached.count = count;
                cached.min_id = min_id;
                for record in new {
                    cached.by_poster.insert(record.poster_id.clone(), record);
                }
                cached.rebuild();
                return Ok(Arc::clone(&cached.sorted));
            }
        }
    }
    let rows = state.reader.read(|s| s.classifications_after(0)).await?;
    let mut fresh = LatestState {
        count: rows.len() as u64,
        min_id: rows.first().map_or(0, |r| r.id),
        max_id: rows.last().map_or(0, |r| r.id),
        by_poster: HashMap::new(),
        sorted: Arc::new(Vec::new()),
    };
    for record in rows {
        fresh.by_poster.insert(record.poster_id.clone(), record);
    }
    fresh.rebuild();
    let sorted = Arc::clone(&fresh.sorted);
    *guard = Some(fresh);
    Ok(sorted)
}
