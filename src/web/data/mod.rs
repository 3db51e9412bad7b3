//! The figures behind each page, shared by the HTML pages and the JSON API
//! so both always say the same thing.

use super::WebState;
use crate::analytics::accuracy::{self, Accuracy};
use crate::analytics::impact::{self, Impact, ImpactInputs};
use crate::analytics::insights::{self, Insights};
use crate::feedback::{self, Correction, FeedbackError, ImportReport, Via};
use crate::poster::{now_ms, PosterId};
use crate::store::{
    ClassificationRecord, Feedback, HistoryFilter, PosterDetail, Store, StoreError, Totals,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

mod latest;
#[path = "map.rs"]
mod poster_map;

pub use latest::{latest_all, LatestCache};
pub use poster_map::{poster_map, MapAnswer, MapCache, MapView};

/// History rows per page: a phone screen or two of thumbnails, and a page
/// well under the 200 KB budget with its images.
pub const PER_PAGE: usize = 24;
/// Most rows one API call may ask for.
pub const MAX_PER_PAGE: usize = 200;

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
    let window = history_window(query, &state.model.get().labels)?;
    let w = window.clone();
    let (items, total, sources) = state
        .reader
        .read(move |s| history_rows(s, &w))
        .await
        .map_err(|err| match err {
            StoreError::Corrupt {
                what: "filter",
                detail,
                ..
            } => DataError::BadRequest(detail),
            other => DataError::Store(other),
        })?;
    let HistoryWindow {
        query,
        page,
        per_page,
        ..
    } = window;
    let pages = (total as usize).div_ceil(per_page).max(1);
    Ok(HistoryPage {
        items,
        total,
        page,
        pages,
        per_page,
        genres: state.model.get().labels.clone(),
        sources,
        query,
    })
}

/// A history query, checked: the rows it asks for.
#[derive(Debug, Clone)]
pub struct HistoryWindow {
    pub query: HistoryQuery,
    pub page: usize,
    pub per_page: usize,
    pub offset: usize,
}

/// Check a history query against the model's genres and work out its page
/// of rows; public so the query-string fuzzer reaches it without a store.
pub fn history_window(query: HistoryQuery, labels: &[String]) -> Result<HistoryWindow, DataError> {
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
        if !labels.contains(genre) {
            return Err(DataError::BadRequest(format!(
                "unknown genre `{genre}`; the model's genres are {}",
                labels.join(", ")
            )));
        }
    }
    let per_page = query.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let page = query.page.unwrap_or(1).max(1);
    // Any page past the last is an empty page; one whose offset does not
    // even fit SQLite's integer is a mistake.
    let offset = (page - 1)
        .checked_mul(per_page)
        .filter(|&offset| i64::try_from(offset).is_ok())
        .ok_or_else(|| {
            DataError::BadRequest(format!(
                "page {page} is out of range: ask for a page from 1 to the `pages` of the answer"
            ))
        })?;
    Ok(HistoryWindow {
        query,
        page,
        per_page,
        offset,
    })
}

/// The rows, the count and the sources of a checked history query. A date
/// that is not `YYYY-MM-DD` is a `Corrupt` error about the `filter`.
pub fn history_rows(
    s: &Store,
    window: &HistoryWindow,
) -> Result<(Vec<ClassificationRecord>, u64, Vec<String>), StoreError> {
    let q = &window.query;
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
    let items = s.recent(window.per_page, window.offset, &filter)?;
    let (sources, _) = s.history_facets()?;
    Ok((items, total, sources))
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
        thresholds: state.model.get().thresholds(),
    })
}

pub async fn thumbnail(state: &WebState, id: PosterId) -> Result<Option<Vec<u8>>, DataError> {
    Ok(state.reader.read(move |s| s.thumbnail(&id)).await?)
}

/// A person's correction: the genres the poster really has, or its tags
/// confirmed as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// Genres among the model's; at least one, unless `kept`.
    #[serde(default)]
    pub genres: Vec<String>,
    /// Who says so (optional, free text).
    pub by: Option<String>,
    /// The tags are right as they are ("kept as tagged"): send no genres.
    #[serde(default)]
    pub kept: bool,
}

impl From<FeedbackError> for DataError {
    fn from(err: FeedbackError) -> Self {
        match err {
            FeedbackError::UnknownPoster(_) => DataError::NotFound(err.to_string()),
            FeedbackError::Store(err) => DataError::Store(err),
            other => DataError::BadRequest(other.to_string()),
        }
    }
}

pub async fn add_feedback(
    state: &WebState,
    id: PosterId,
    request: FeedbackRequest,
    via: Via,
) -> Result<Feedback, DataError> {
    let correction = Correction {
        id: id.to_string(),
        genres: request.genres,
        kept: request.kept,
        by: request.by,
    };
    let stored = feedback::record(
        &state.store,
        &state.learning.known_genres(),
        correction,
        via,
    )
    .await;
    state.uploads.metrics.feedback(via.as_str(), stored.is_ok());
    Ok(stored?)
}

/// A bulk import (`id,Genre|Genre[,by]` rows, or `id,kept`).
pub async fn import_feedback(state: &WebState, text: &str) -> Result<ImportReport, DataError> {
    let report = feedback::import(
        &state.store,
        &state.learning.known_genres(),
        text,
        Via::Import,
    )
    .await?;
    state.uploads.metrics.feedback_many(
        Via::Import.as_str(),
        report.imported,
        report.refused.len(),
    );
    Ok(report)
}

pub async fn insights(state: &WebState) -> Result<Insights, DataError> {
    let since = now_ms() - 60 * 24 * 3600 * 1000;
    let latest = latest_all(state).await?;
    let (days, midnight) = state
        .reader
        .read(move |s| Ok((s.counts_by_day(since)?, s.local_midnight_ms()?)))
        .await?;
    Ok(insights::compute(
        &state.model.get().labels,
        &latest,
        &days,
        state.reference.as_deref(),
        midnight,
    ))
}

pub async fn accuracy(state: &WebState) -> Result<Accuracy, DataError> {
    let corrections = state.reader.read(|s| s.corrections()).await?;
    Ok(accuracy::compute(&state.model.get().labels, &corrections))
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
            state.model.get().validation_precision,
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
    let publish = state.publish.status();
    let queue = &state.uploads.queue;
    Ok(Status {
        device_id: state.device_id.to_string(),
        model: state.model.get().name.clone(),
        broker_connected: publish.connected,
        broker_error: if publish.connected {
            None
        } else {
            publish.last_error.clone()
        },
        queue_depth: queue.depth() as u64,
        queue_capacity: queue.capacity() as u64,
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
    let name = state.model.get().name.clone();
    Ok(state
        .reader
        .read(move |s| s.latency_summary(&name, 1000))
        .await?)
}
