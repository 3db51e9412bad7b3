//! The HTTP input: read an uploaded image (the raw body, or the `file`
//! field of a multipart form), queue it, wait for its result.
//!
//! `POST /api/v1/posters` ([`crate::web::api`]) and the dashboard's Tag page
//! both come through here and answer the same JSON object that goes out on
//! MQTT ([`PosterEvent`]). A full queue is answered with 503 and
//! `Retry-After` at once ([`WhenFull::Reject`](crate::queue::WhenFull))
//! instead of holding the connection: the client knows best whether to
//! retry or give up.

use crate::poster::{Poster, PosterError, PosterEvent};
use crate::queue::{PosterQueue, Reserved};
use crate::telemetry::Metrics;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use std::sync::Arc;

/// Room for the multipart boundaries and headers around a file that is
/// itself just under the upload limit.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The largest request body accepted: an upload at the limit plus its
/// multipart framing.
pub fn body_limit(max_upload_bytes: u64) -> usize {
    usize::try_from(max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX)
}

/// What a multipart form carried: an image, or (the Tag page's buttons) the
/// number of a drawn sample.
#[derive(Debug)]
pub enum FormField {
    File(Bytes),
    Sample(String),
}

/// Uploads into the queue; cheap to clone.
#[derive(Clone)]
pub struct Uploads {
    pub queue: PosterQueue,
    pub metrics: Arc<Metrics>,
    pub max_upload_bytes: u64,
}

impl Uploads {
    /// Read an uploaded image (raw body or multipart `file`), queue it with
    /// `source`, and wait for its result. The queue slot and the memory for
    /// the body are reserved before the body is read: when there is no room
    /// the client hears 503 at once, and the body is never held.
    pub async fn classify_request(
        &self,
        req: Request,
        source: &str,
    ) -> Result<PosterEvent, PosterError> {
        let read = async {
            let reserved = self.reserve_for(&req)?;
            let bytes = self.read_image(req).await?;
            Ok((reserved, bytes))
        };
        match read.await {
            Ok((reserved, bytes)) => self.send(reserved, bytes, source).await,
            Err(err) => Err(self.counted(err)),
        }
    }

    /// [`classify_request`](Self::classify_request) for the Tag page's
    /// form: a `file`, or the number of a drawn sample (its bytes from
    /// `sample`).
    pub async fn classify_form(
        &self,
        req: Request,
        source: &str,
        sample: impl FnOnce(&str) -> Result<(Bytes, &'static str), PosterError>,
    ) -> Result<PosterEvent, PosterError> {
        let read = async {
            let reserved = self.reserve_for(&req)?;
            let (bytes, source) = match self.read_form(req, true).await? {
                FormField::File(bytes) => (bytes, source),
                FormField::Sample(which) => sample(&which)?,
            };
            Ok((reserved, bytes, source))
        };
        match read.await {
            Ok((reserved, bytes, source)) => self.send(reserved, bytes, source).await,
            Err(err) => Err(self.counted(err)),
        }
    }

    /// Queue `bytes` with `source` and wait for the result.
    pub async fn classify(&self, bytes: Bytes, source: &str) -> Result<PosterEvent, PosterError> {
        match self.queue.try_reserve(bytes.len() as u64) {
            Ok(reserved) => self.send(reserved, bytes, source).await,
            Err(err) => Err(self.counted(err)),
        }
    }

    async fn send(
        &self,
        reserved: Reserved,
        bytes: Bytes,
        source: &str,
    ) -> Result<PosterEvent, PosterError> {
        let (poster, answer) = Poster::awaited(bytes, source);
        reserved.send(poster);
        answer.outcome().await
    }

    /// Refusals before the queue are counted here; the workers count what
    /// fails after it.
    fn counted(&self, err: PosterError) -> PosterError {
        self.metrics.error(err.kind());
        err
    }

    /// A queue slot and memory for this request's body: its declared size,
    /// or the most an upload may be when it is not declared.
    fn reserve_for(&self, req: &Request) -> Result<Reserved, PosterError> {
        let multipart = is_multipart(req);
        self.refuse_declared_oversize(req, multipart)?;
        let most = if multipart {
            self.max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)
        } else {
            self.max_upload_bytes
        };
        let size = declared_length(req).unwrap_or(most).min(most);
        self.queue.try_reserve(size)
    }

    /// The image bytes from a raw body or a multipart `file` field, refusing
    /// oversize bodies before reading them when the length is declared.
    pub async fn read_image(&self, req: Request) -> Result<Bytes, PosterError> {
        let limit = self.max_upload_bytes;
        let multipart = is_multipart(&req);
        self.refuse_declared_oversize(&req, multipart)?;
        let bytes = if multipart {
            match self.read_form(req, false).await? {
                FormField::File(bytes) => bytes,
                FormField::Sample(_) => return Err(no_file_field()),
            }
        } else {
            Bytes::from_request(req, &())
                .await
                .map_err(|rejection| body_error(rejection.status(), rejection.body_text(), limit))?
        };
        self.checked(bytes)
    }

    /// A multipart form's `file` field, or with `samples` its `sample`
    /// field, whichever comes first.
    pub async fn read_form(&self, req: Request, samples: bool) -> Result<FormField, PosterError> {
        let limit = self.max_upload_bytes;
        self.refuse_declared_oversize(&req, true)?;
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|rejection| PosterError::Multipart(rejection.body_text()))?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|err| body_error(err.status(), err.body_text(), limit))?;
            let Some(field) = field else {
                return Err(no_file_field());
            };
            match field.name() {
                Some("file") => {
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|err| body_error(err.status(), err.body_text(), limit))?;
                    return self.checked(bytes).map(FormField::File);
                }
                Some("sample") if samples => {
                    let text = field
                        .text()
                        .await
                        .map_err(|err| PosterError::Multipart(err.body_text()))?;
                    return Ok(FormField::Sample(text));
                }
                _ => {}
            }
        }
    }

    fn refuse_declared_oversize(&self, req: &Request, multipart: bool) -> Result<(), PosterError> {
        let limit = self.max_upload_bytes;
        let declared = declared_length(req);
        let allowed = if multipart {
            limit.saturating_add(MULTIPART_OVERHEAD)
        } else {
            limit
        };
        match declared.filter(|&size| size > allowed) {
            Some(size) => Err(PosterError::TooLarge { size, limit }),
            None => Ok(()),
        }
    }

    fn checked(&self, bytes: Bytes) -> Result<Bytes, PosterError> {
        let limit = self.max_upload_bytes;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > limit {
            return Err(PosterError::TooLarge { size, limit });
        }
        if bytes.is_empty() {
            return Err(PosterError::Empty);
        }
        Ok(bytes)
    }
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

fn no_file_field() -> PosterError {
    PosterError::Multipart("no `file` field".to_owned())
}

/// A body that could not be read: over the limit, or broken.
fn body_error(status: StatusCode, text: String, limit: u64) -> PosterError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The size is unknown (no Content-Length): say "over" the limit.
        PosterError::TooLarge {
            size: limit.saturating_add(1),
            limit,
        }
    } else {
        PosterError::Multipart(text)
    }
}
