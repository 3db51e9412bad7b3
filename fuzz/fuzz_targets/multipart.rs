//! Uploads: `POST /api/v1/posters` and the dashboard's Tag form, through
//! the real reading code (`Uploads::read_image` / `read_form`, which use
//! axum's `Multipart` extractor) on an in-memory request. No queue slot is
//! reserved and nothing is classified: only the body is taken apart.
//!
//! Input: one flag byte (bit 0: the Tag form with samples, else the API's
//! `read_image`; bit 1: declare a Content-Length), a first line with the
//! Content-Type header, then the body.

#![no_main]

use axum::body::Body;
use axum::extract::Request;
use libfuzzer_sys::fuzz_target;
use marquee::ingest::http::{FormField, Uploads};
use marquee::poster::PosterError;
use marquee::queue::PosterQueue;
use marquee::telemetry::Metrics;
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;

const MAX_UPLOAD: u64 = 16 * 1024;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    })
}

fn uploads() -> Uploads {
    // The receiver is dropped: nothing here reaches the queue.
    let (queue, _) = PosterQueue::bounded(1, 1 << 20);
    Uploads {
        queue,
        metrics: Arc::new(Metrics::default()),
        max_upload_bytes: MAX_UPLOAD,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(newline) = rest.iter().take(200).position(|&b| b == b'\n') else {
        return;
    };
    let (content_type, body) = (&rest[..newline], &rest[newline + 1..]);
    let mut request = Request::builder().method("POST").uri("/api/v1/posters");
    match axum::http::HeaderValue::from_bytes(content_type) {
        Ok(value) => request = request.header("content-type", value),
        Err(_) => return,
    }
    if flags & 2 != 0 {
        request = request.header("content-length", body.len());
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let uploads = uploads();
    let read = runtime().block_on(async {
        if flags & 1 != 0 {
            uploads.read_form(request, true).await
        } else {
            uploads.read_image(request).await.map(FormField::File)
        }
    });
    match read {
        Ok(FormField::File(bytes)) => {
            assert!(!bytes.is_empty(), "an empty upload was accepted");
            assert!(
                bytes.len() as u64 <= MAX_UPLOAD,
                "{} bytes accepted",
                bytes.len()
            );
        }
        Ok(FormField::Sample(_)) => {}
        Err(PosterError::TooLarge { .. } | PosterError::Empty | PosterError::Multipart(_)) => {}
        Err(other) => panic!("an upload failed with an unexpected error: {other:?}"),
    }
});
