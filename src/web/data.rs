//! The figures behind each page, shared by the HTML pages and the JSON API
//! so both always say the same thing.

use super::WebState;
use crate::analytics::accuracy::{self, Accuracy};
use crate::analytics::impact::{self, Impact, ImpactInputs};
use crate::analytics::insights::{self, Insights};
use crate::analytics::map::{self, PosterMap, MAP_MAX_POSTERS};
use crate::ingest::http::error_response;
use crate::store::{
    now_ms, ClassificationRecord, Feedback, HistoryFilter, NewFeedback, PosterDetail, PosterId,
    StoreError, Totals,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;
use utoipa::{IntoParams, ToSchema};

/// History rows per page: a phone screen or two of thumbnails, and a page
/// well under the 200 KB budget with its images.
pub const PER_PAGE: usize = 24;
/// Most rows one API call may ask for.
pub const MAX_PER_PAGE: usize = 200;
/// The map is recomputed when this share of posters is new...
const MAP_STALE_SHARE: f64 = 0.1;
/// ...or when it is older than this and anything is new.
const MAP_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Why a dashboard request failed; the API answers it as JSON, pages as HTML.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DataError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(StoreError::UnknownPoster(_)) => StatusCode::NOT_FOUND,
            Self::Store(StoreError::InvalidPosterId(_)) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for DataError {
    fn into_response(self) -> Response {
        if matches!(self.status(), StatusCode::INTERNAL_SERVER_ERROR) {
            warn!(error = %self, "dashboard request failed");
        }
        error_response(self.status(), self.to_string())
    }
}

/// `GET /api/v1/history` and `/history` filters.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A genre among the tags.
    pub genre: Option<String>,
    /// `http`, `dashboard`, `mqtt`, `watch`, `camera:<name>`, `sample`.
    pub source: Option<String>,
    /// First local day, `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Last local day, `YYYY-MM-DD` (inclusive).
    pub to: Option<String>,
    /// Best genre's score at least this (0-1).
    pub min_confidence: Option<f32>,
    /// Best genre's score below this (0-1).
    pub max_confidence: Option<f32>,
    /// From 1.
    pub page: Option<usize>,
    /// Rows per page (default 24, at most 200).
    pub per_page: Option<usize>,
}

impl HistoryQuery {
    /// Empty form fields (`genre=`) mean "any".
    fn cleaned(mut self) -> Self {
        let blank = |v: &mut Option<String>| {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        };
        blank(&mut self.genre);
        blank(&mut self.source);
        blank(&mut self.from);
        blank(&mut self.to);
        self
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPage {
    pub items: Vec<ClassificationRecord>,
    /// Classifications matching the filters.
    pub total: u64,
    pub page: usize,
    pub pages: usize,
    pub per_page: usize,
    /// What the filters can choose from.
    pub genres: Vec<String>,
    pub sources: Vec<String>,
    /// The filters as applied.
    pub query: HistoryQuery,
}

pub async fn history(state: &WebState, query: HistoryQuery) -> Result<HistoryPage, DataError> {
    let query = query.cleaned();
    for (name, value) in [
        ("min_confidence", query.min_confidence),
        ("max_confidence", query.max_confidence),
    ] {
        if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
            return Err(DataError::BadRequest(format!(
                "{name} must be between 0 and 1"
            )));
        }
    }
    if let Some(genre) = &query.genre {
        if !state.model.labels.contains(genre) {
            return Err(DataError::BadRequest(format!(
                "unknown genre `{genre}`; the model's genres are {}",
                state.model.labels.join(", ")
            )));
        }
    }
    let per_page = query.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let page = query.page.unwrap_or(1).max(1);
    let q = query.clone();
    let (items, total, sources) = state
        .reader
        .read(move |s| {
            let date = |text: &Option<String>, key: &str| -> Result<Option<i64>, StoreError> {
                match text {
                    None => Ok(None),
                    Some(t) => s
                        .local_date_ms(t)?
                        .map(Some)
                        .ok_or_else(|| StoreError::Corrupt {
                            what: "filter",
                            key: key.to_owned(),
                            detail: format!("`{t}` is not a date YYYY-MM-DD"),
                        }),
                }
            };
            let filter = HistoryFilter {
                source: q.source.clone(),
                tag: q.genre.clone(),
                since_ms: date(&q.from, "from")?,
                // `to` is inclusive: up to the start of the next day.
                until_ms: date(&q.to, "to")?.map(|ms| ms + 24 * 3600 * 1000),
                min_confidence: q.min_confidence,
                max_confidence: q.max_confidence,
                ..HistoryFilter::default()
            };
            let total = s.count_recent(&filter)?;
            let items = s.recent(per_page, (page - 1) * per_page, &filter)?;
            let (sources, _) = s.history_facets()?;
            Ok((items, total, sources))
        })
        .await
        .map_err(|err| match err {
            StoreError::Corrupt {
                what: "filter",
                detail,
                ..
            } => DataError::BadRequest(detail),
            other => DataError::Store(other),
        })?;
    let pages = (total as usize).div_ceil(per_page).max(1);
    Ok(HistoryPage {
        items,
        total,
        page,
        pages,
        per_page,
        genres: state.model.labels.clone(),
        sources,
        query,
    })
}

/// A poster's page: its record, latest scores and the corrections made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PosterView {
    #[serde(flatten)]
    pub detail: PosterDetail,
    /// Oldest first; the last one is what the accuracy page counts.
    pub feedback: Vec<Feedback>,
    /// Each genre's threshold, by genre.
    pub thresholds: Vec<GenreThreshold>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenreThreshold {
    pub label: String,
    pub threshold: f32,
}

pub fn parse_id(text: &str) -> Result<PosterId, DataError> {
    PosterId::parse(text).map_err(|_| {
        DataError::BadRequest(format!(
            "`{text}` is not a poster id (64 lowercase hex digits: the sha256 of the image)"
        ))
    })
}

pub async fn poster(state: &WebState, id: PosterId) -> Result<PosterView, DataError> {
    let shown = id.clone();
    let (detail, feedback) = state
        .reader
        .read(move |s| {
            let detail = s.poster(&id)?;
            let feedback = s.feedback_for(&id)?;
            Ok((detail, feedback))
        })
        .await?;
    let detail = detail.ok_or_else(|| {
        DataError::NotFound(format!(
            "poster {shown} is not in the store (never seen, or removed by retention)"
        ))
    })?;
    Ok(PosterView {
        detail,
        feedback,
        thresholds: state.model.thresholds(),
    })
}

pub async fn thumbnail(state: &WebState, id: PosterId) -> Result<Option<Vec<u8>>, DataError> {
    Ok(state.reader.read(move |s| s.thumbnail(&id)).await?)
}

/// A person's correction: the genres the poster really has.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FeedbackRequest {
    /// Genres among the model's; at least one.
    pub genres: Vec<String>,
    /// Who says so (optional, free text).
    pub by: Option<String>,
}

pub async fn add_feedback(
    state: &WebState,
    id: PosterId,
    request: FeedbackRequest,
) -> Result<Feedback, DataError> {
    let mut genres: Vec<String> = Vec::new();
    for genre in request.genres {
        let genre = genre.trim().to_owned();
        if !state.model.labels.contains(&genre) {
            return Err(DataError::BadRequest(format!(
                "unknown genre `{genre}`; choose among {}",
                state.model.labels.join(", ")
            )));
        }
        if !genres.contains(&genre) {
            genres.push(genre);
        }
    }
    if genres.is_empty() {
        return Err(DataError::BadRequest(
            "choose at least one genre the poster has".into(),
        ));
    }
    let by = request
        .by
        .map(|b| b.trim().chars().take(64).collect::<String>())
        .filter(|b| !b.is_empty());
    let feedback = NewFeedback {
        poster_id: id.clone(),
        genres,
        by,
        created_at_ms: now_ms(),
    };
    let stored = feedback.clone();
    let feedback_id = state
        .http
        .store
        .call(move |s| s.add_feedback(&stored))
        .await?;
    Ok(Feedback {
        id: feedback_id,
        poster_id: feedback.poster_id,
        genres: feedback.genres,
        by: feedback.by,
        created_at_ms: feedback.created_at_ms,
    })
}

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

pub async fn insights(state: &WebState) -> Result<Insights, DataError> {
    let since = now_ms() - 60 * 24 * 3600 * 1000;
    let latest = latest_all(state).await?;
    let (days, midnight) = state
        .reader
        .read(move |s| Ok((s.counts_by_day(since)?, s.local_midnight_ms()?)))
        .await?;
    Ok(insights::compute(
        &state.model.labels,
        &latest,
        &days,
        state.reference.as_deref(),
        midnight,
    ))
}

pub async fn accuracy(state: &WebState) -> Result<Accuracy, DataError> {
    let corrections = state.reader.read(|s| s.corrections()).await?;
    Ok(accuracy::compute(&state.model.labels, &corrections))
}

/// `GET /api/v1/impact` and `/impact` inputs; unset ones come from `[dashboard]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImpactQuery {
    pub posters_per_year: Option<f64>,
    pub manual_cost: Option<f64>,
    pub correction_cost: Option<f64>,
    /// Auto-accept threshold on the best genre's score (0-1).
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImpactView {
    #[serde(flatten)]
    pub impact: Impact,
    pub currency: String,
    /// Posters per year as measured on this device, if it has a day of history.
    pub measured_posters_per_year: Option<f64>,
}

pub async fn impact(state: &WebState, query: ImpactQuery) -> Result<ImpactView, DataError> {
    let check = |name: &str, v: Option<f64>, max: f64| -> Result<(), DataError> {
        match v {
            Some(v) if !(0.0..=max).contains(&v) || !v.is_finite() => Err(DataError::BadRequest(
                format!("{name} must be between 0 and {max}"),
            )),
            _ => Ok(()),
        }
    };
    check("posters_per_year", query.posters_per_year, 1e12)?;
    check("manual_cost", query.manual_cost, 1e6)?;
    check("correction_cost", query.correction_cost, 1e6)?;
    check("threshold", query.threshold, 1.0)?;
    let latest = latest_all(state).await?;
    let (corrections, totals) = state
        .reader
        .read(|s| Ok((s.corrections()?, s.totals()?)))
        .await?;
    let measured = measured_per_year(&totals);
    let config = &state.config;
    let inputs = ImpactInputs {
        posters_per_year: query
            .posters_per_year
            .or(config.posters_per_year)
            .or(measured)
            .unwrap_or(10_000.0),
        manual_cost: query.manual_cost.unwrap_or(config.manual_cost),
        correction_cost: query.correction_cost.unwrap_or(config.correction_cost),
        threshold: query.threshold.unwrap_or(config.auto_accept),
    };
    Ok(ImpactView {
        impact: impact::compute(
            inputs,
            &latest,
            &corrections,
            state.model.validation_precision,
        ),
        currency: config.currency.clone(),
        measured_posters_per_year: measured,
    })
}

/// Distinct posters a year at the rate seen so far, once there is at least
/// a day of history (less would extrapolate one busy hour to a year).
fn measured_per_year(totals: &Totals) -> Option<f64> {
    let (first, last) = (totals.first_ms?, totals.last_ms?);
    let span_days = (last - first) as f64 / 86_400_000.0;
    (span_days >= 1.0).then(|| totals.posters as f64 / span_days * 365.0)
}

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
    let dim = state.model.feature_dim;
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
    let dim = state.model.feature_dim;
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

/// The status line of every page and `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    pub device_id: String,
    pub model: String,
    pub broker_connected: bool,
    /// Why the broker is unreachable, when it is.
    pub broker_error: Option<String>,
    pub queue_depth: u64,
    pub queue_capacity: u64,
    /// Results stored but not yet acknowledged by the broker.
    pub outbox_backlog: u64,
    pub posters_today: u64,
    pub totals: Totals,
    pub uptime_s: u64,
    /// `open`, `password`, `token` (how access is controlled).
    pub access: &'static str,
}

pub async fn status(state: &WebState) -> Result<Status, DataError> {
    let (backlog, today, totals) = state
        .reader
        .read(|s| Ok((s.outbox_backlog()?, s.posters_today()?, s.totals()?)))
        .await?;
    let publish = state.http.publish.status();
    let capacity = state.http.posters.max_capacity();
    Ok(Status {
        device_id: state.device_id.to_string(),
        model: state.model.name.clone(),
        broker_connected: publish.connected,
        broker_error: if publish.connected {
            None
        } else {
            publish.last_error.clone()
        },
        queue_depth: (capacity - state.http.posters.capacity()) as u64,
        queue_capacity: capacity as u64,
        outbox_backlog: backlog,
        posters_today: today,
        totals,
        uptime_s: state.started.elapsed().as_secs(),
        access: if state.auth.has_password() {
            "password"
        } else if state.auth.required() {
            "token"
        } else {
            "open"
        },
    })
}

/// The newest classifications for the live page.
pub async fn latest(state: &WebState, n: usize) -> Result<Vec<ClassificationRecord>, DataError> {
    Ok(state
        .reader
        .read(move |s| s.recent(n, 0, &HistoryFilter::default()))
        .await?)
}

/// Latency of the newest 1000 classifications by the running model.
pub async fn model_latency(state: &WebState) -> Result<crate::store::LatencySummary, DataError> {
    let name = state.model.name.clone();
    Ok(state
        .reader
        .read(move |s| s.latency_summary(&name, 1000))
        .await?)
}
