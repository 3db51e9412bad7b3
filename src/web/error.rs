//! One error type for every refusal the HTTP surface answers: a status, a
//! message that says what failed and what to do, and `Retry-After` where
//! waiting helps. The API sends it as JSON `{"error": "..."}`; the pages
//! show the same message in HTML with the same status.

use super::data::DataError;
use crate::camera::CaptureError;
use crate::poster::PosterError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// What a client is told to wait before retrying when the queue is full:
/// about one inference batch on a small board.
const RETRY_AFTER_FULL_S: u32 = 2;
/// What a client is told to wait before retrying an offline camera.
const RETRY_AFTER_OFFLINE_S: u32 = 5;

/// A refusal, ready to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after_s: Option<u32>,
}

/// The JSON body of every error: `{"error": "what failed and what to do"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiError)]
pub struct ErrorBody {
    pub error: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    #[must_use]
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_after_s(&self) -> Option<u32> {
        self.retry_after_s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(error = %self.message, "request failed");
        }
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<PosterError> for ApiError {
    fn from(err: PosterError) -> Self {
        Self::from(&err)
    }
}

impl From<&PosterError> for ApiError {
    fn from(err: &PosterError) -> Self {
        let status = match err {
            PosterError::Empty | PosterError::Multipart(_) => StatusCode::BAD_REQUEST,
            PosterError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            PosterError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PosterError::BadImage(_) | PosterError::TooManyPixels(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            PosterError::QueueFull | PosterError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            PosterError::Model(_) | PosterError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let full = matches!(err, PosterError::QueueFull);
        let answer = Self::new(status, err.to_string());
        if full {
            answer.retry_after(RETRY_AFTER_FULL_S)
        } else {
            answer
        }
    }
}

impl From<CaptureError> for ApiError {
    fn from(err: CaptureError) -> Self {
        let (status, retry) = match err {
            // Queue full, shutting down, a bad image: as for an upload.
            CaptureError::Poster(err) => return err.into(),
            CaptureError::NoCameras | CaptureError::Unknown { .. } => {
                (StatusCode::NOT_FOUND, false)
            }
            CaptureError::Offline { .. } | CaptureError::Timeout { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, true)
            }
            CaptureError::BadFrame { .. } => (StatusCode::BAD_GATEWAY, false),
        };
        let answer = Self::new(status, err.to_string());
        if retry {
            answer.retry_after(RETRY_AFTER_OFFLINE_S)
        } else {
            answer
        }
    }
}

impl From<DataError> for ApiError {
    fn from(err: DataError) -> Self {
        let status = match &err {
            DataError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DataError::NotFound(_) => StatusCode::NOT_FOUND,
            DataError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DataError::Store(StoreError::UnknownPoster(_) | StoreError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            DataError::Store(StoreError::InvalidPosterId(_)) => StatusCode::BAD_REQUEST,
            DataError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_retry_after() {
        let full = ApiError::from(PosterError::QueueFull);
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.retry_after_s(), Some(RETRY_AFTER_FULL_S));
        let response = full.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");

        let bomb = ApiError::from(PosterError::TooManyPixels("image is 9x9 pixels".into()));
        assert_eq!(bomb.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bomb.retry_after_s(), None);

        let offline = ApiError::from(CaptureError::Offline {
            name: "desk".into(),
            reason: "unplugged".into(),
        });
        assert_eq!(offline.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(offline.retry_after_s(), Some(RETRY_AFTER_OFFLINE_S));
        assert_eq!(
            ApiError::from(CaptureError::Poster(PosterError::NotAnImage)).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            ApiError::from(DataError::NotFound("x".into())).status(),
            StatusCode::NOT_FOUND
        );
    }
}
