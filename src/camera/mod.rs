//! Cameras: each `[[camera]]` runs on a thread of its own, turns frames into
//! [`Poster`]s (source `camera:<name>`) on the pipeline's queue, and keeps a
//! status the dashboard, `/metrics` and MQTT read.
//!
//! - `on_demand`: a frame is captured when asked ([`CameraRegistry::capture`]:
//!   `POST /api/v1/capture`, the MQTT `capture` topic). Frames still arrive
//!   (that is how the camera is known to be online) but are not decoded.
//! - `continuous`: every frame goes through the [`change::Detector`]; a
//!   poster is captured once it has settled (see `change.rs` for the rules).
//!   Continuous cameras can be captured on demand too.
//!
//! When the device or stream goes away the camera goes offline and is
//! reopened with exponential backoff (0.5 s doubling to 30 s, reset by the
//! first frame); each change is logged once, not each attempt.
//!
//! Full queue: an on-demand capture is answered 503 at once (like an upload);
//! a continuous capture is held and retried with the following frames, a
//! newer capture replacing it (and counted as dropped): the camera never
//! blocks on the workers and the newest poster is the one that goes.
//!
//! Work per frame (decode, signature, JPEG encoding of a capture) runs on
//! the camera's thread, never on the async runtime that serves HTTP and MQTT.

pub mod api;
pub mod availability;
pub mod change;
pub mod convert;
pub mod http;
pub mod source;
pub mod spec;
pub mod status;
pub mod synthetic;
#[cfg(feature = "camera")]
pub mod v4l2;

pub use source::{Frame, FrameData, FrameSource, SourceError, SourceFuture};
pub use spec::SourceSpec;
pub use status::CameraStatus;

use crate::config::{CameraMode, CameraSettings};
use crate::ingest::{IngestError, Poster};
use crate::publish::PosterEvent;
use crate::store::{now_ms, PosterId};
use bytes::Bytes;
use change::{Detector, DetectorSettings, Rect, Signature, Verdict};
use image::RgbImage;
use status::SharedStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument as _};

/// JPEG quality of a capture that had to be re-encoded (a region of
/// interest, or a camera that does not deliver JPEG).
const CAPTURE_JPEG_QUALITY: u8 = 90;

/// Capture requests waiting for a camera's next frame.
const REQUEST_QUEUE: usize = 8;

/// Timings of the camera threads; tests shorten the backoff.
#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// First wait before reopening a camera that went away.
    pub backoff_min: Duration,
    /// The wait doubles up to this.
    pub backoff_max: Duration,
    /// How long a capture request waits for a frame.
    pub capture_timeout: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            capture_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a capture request was not answered with a classification.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no camera is configured: add a [[camera]] table to the configuration")]
    NoCameras,

    #[error("no camera named `{name}`; the cameras are: {}", .known.join(", "))]
    Unknown { name: String, known: Vec<String> },

    #[error("camera `{name}` is offline ({reason}); check its cable or network and retry")]
    Offline { name: String, reason: String },

    #[error("camera `{name}` gave no frame within {secs} s; check it and retry")]
    Timeout { name: String, secs: u64 },

    #[error("camera `{name}` sent a bad frame ({reason}); retry")]
    BadFrame { name: String, reason: String },

    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// The answer to a capture request: the poster is queued, its result comes
/// on the receiver.
type Queued = oneshot::Receiver<Result<PosterEvent, IngestError>>;

struct CaptureRequest {
    reply: oneshot::Sender<Result<Queued, CaptureError>>,
}

/// One camera as the registry sees it.
struct Shared {
    name: String,
    status: SharedStatus,
    requests: mpsc::Sender<CaptureRequest>,
    /// Wakes a source that polls slowly while idle (an on-demand snapshot
    /// camera) so a capture does not wait for its next poll.
    wake: Arc<Notify>,
}

/// A cheap, cloneable handle on the running cameras.
#[derive(Clone)]
pub struct CameraRegistry {
    cameras: Arc<Vec<Arc<Shared>>>,
    capture_timeout: Duration,
}

impl std::fmt::Debug for CameraRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraRegistry")
            .field("cameras", &self.names())
            .finish()
    }
}

impl CameraRegistry {
    /// No cameras (captures answer [`CaptureError::NoCameras`]).
    pub fn empty() -> Self {
        Self {
            cameras: Arc::new(Vec::new()),
            capture_timeout: RunnerOptions::default().capture_timeout,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }

    /// Every camera's status, in configuration order.
    pub fn snapshot(&self) -> Vec<CameraStatus> {
        self.cameras.iter().map(|c| c.status.snapshot()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.cameras.iter().map(|c| c.name.clone()).collect()
    }

    /// Each camera's name and its `online` flag, to follow.
    pub fn watch_online(&self) -> Vec<(String, watch::Receiver<bool>)> {
        self.cameras
            .iter()
            .map(|c| (c.name.clone(), c.status.watch_online()))
            .collect()
    }

    fn find(&self, name: Option<&str>) -> Result<&Arc<Shared>, CaptureError> {
        let first = self.cameras.first().ok_or(CaptureError::NoCameras)?;
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            None => Ok(first),
            Some(name) => {
                self.cameras
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| CaptureError::Unknown {
                        name: name.to_owned(),
                        known: self.names(),
                    })
            }
        }
    }

    /// Capture a frame from camera `name` (default: the first camera) and
    /// wait for its classification.
    pub async fn capture(&self, name: Option<&str>) -> Result<PosterEvent, CaptureError> {
        let queued = self.queue_capture(name).await?;
        // The workers always answer; a dropped sender means one stopped.
        Ok(queued.await.unwrap_or(Err(IngestError::ShuttingDown))?)
    }

    /// Capture a frame and queue it without waiting for the result (which
    /// goes to MQTT and the store as usual).
    pub async fn queue_capture(&self, name: Option<&str>) -> Result<Queued, CaptureError> {
        let camera = self.find(name)?;
        let offline = || CaptureError::Offline {
            name: camera.name.clone(),
            reason: camera
                .status
                .snapshot()
                .last_error
                .unwrap_or_else(|| "no frame yet".to_owned()),
        };
        if !camera.status.is_online() {
            return Err(offline());
        }
        let timeout = CaptureError::Timeout {
            name: camera.name.clone(),
            secs: self.capture_timeout.as_secs().max(1),
        };
        let (reply, answer) = oneshot::channel();
        camera
            .requests
            .try_send(CaptureRequest { reply })
            .map_err(|_| IngestError::QueueFull)?;
        camera.wake.notify_one();
        match tokio::time::timeout(self.capture_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(offline()),
            Err(_) => Err(timeout),
        }
    }
}

/// The running cameras: their registry and threads.
pub struct Cameras {
    registry: CameraRegistry,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A camera ready to start.
pub struct CameraSetup {
    pub settings: CameraSettings,
    pub source: Box<dyn FrameSource>,
    pub wake: Arc<Notify>,
}

impl CameraSetup {
    /// The source named by `settings.source`; the error says what to fix.
    pub fn from_settings(settings: CameraSettings) -> Result<Self, String> {
        let wake = Arc::new(Notify::new());
        let source = build_source(&settings, &wake)?;
        Ok(Self {
            settings,
            source,
            wake,
        })
    }

    /// A camera on a source made elsewhere (tests, the synthetic source).
    pub fn with_source(settings: CameraSettings, source: Box<dyn FrameSource>) -> Self {
        Self {
            settings,
            source,
            wake: Arc::new(Notify::new()),
        }
    }
}

/// Every `[[camera]]` of the configuration, ready to start; the error names
/// the camera and what to fix.
pub fn setups_from_config(config: &crate::config::Config) -> Result<Vec<CameraSetup>, String> {
    config
        .cameras
        .iter()
        .enumerate()
        .map(|(i, camera)| {
            CameraSetup::from_settings(camera.resolve(&config.camera_defaults))
                .map_err(|err| format!("camera[{i}] (`{}`): {err}", camera.name))
        })
        .collect()
}

/// Build the frame source for a camera's `source` string.
pub fn build_source(
    settings: &CameraSettings,
    wake: &Arc<Notify>,
) -> Result<Box<dyn FrameSource>, String> {
    match SourceSpec::parse(&settings.source)? {
        SourceSpec::Http { url, stream } => Ok(Box::new(http::HttpSource::new(
            &url,
            stream,
            settings,
            Arc::clone(wake),
        )?)),
        SourceSpec::Synthetic { .. } => Ok(Box::new(synthetic::SyntheticSource::live(
            synthetic::demo_script(),
            settings.fps,
            settings.width,
            settings.height,
        ))),
        SourceSpec::V4l2 { device } => v4l2_source(&device, settings),
    }
}

#[cfg(feature = "camera")]
fn v4l2_source(device: &str, settings: &CameraSettings) -> Result<Box<dyn FrameSource>, String> {
    Ok(Box::new(v4l2::V4l2Source::new(device, settings)))
}

#[cfg(not(feature = "camera"))]
fn v4l2_source(device: &str, _settings: &CameraSettings) -> Result<Box<dyn FrameSource>, String> {
    Err(format!(
        "`{device}` is a V4L2 camera, and this build has no V4L2 support: rebuild with \
         `cargo build --release --features camera` (needs libclang-dev), or use an http:// \
         camera"
    ))
}

impl Cameras {
    /// Start one thread per camera. Each holds a clone of `posters`; they
    /// all end when `stop` is cancelled.
    pub fn start(
        setups: Vec<CameraSetup>,
        posters: &mpsc::Sender<Poster>,
        stop: &CancellationToken,
        opts: RunnerOptions,
    ) -> std::io::Result<Self> {
        let mut shared = Vec::new();
        let mut threads = Vec::new();
        for setup in setups {
            let kind = SourceSpec::parse(&setup.settings.source).map_or("custom", |s| s.kind());
            let (requests, requests_rx) = mpsc::channel(REQUEST_QUEUE);
            let camera = Arc::new(Shared {
                name: setup.settings.name.clone(),
                status: SharedStatus::new(
                    &setup.settings.name,
                    &setup.settings.source,
                    kind,
                    setup.settings.mode,
                ),
                requests,
                wake: setup.wake,
            });
            let runner = Runner::new(
                Arc::clone(&camera),
                setup.settings,
                setup.source,
                requests_rx,
                posters.clone(),
                stop.clone(),
                opts,
            );
            let thread = std::thread::Builder::new()
                .name(format!("marquee-camera-{}", camera.name))
                .spawn(move || runner.run_on_own_runtime())?;
            shared.push(camera);
            threads.push(thread);
        }
        Ok(Self {
            registry: CameraRegistry {
                cameras: Arc::new(shared),
                capture_timeout: opts.capture_timeout,
            },
            threads,
        })
    }

    pub fn registry(&self) -> CameraRegistry {
        self.registry.clone()
    }

    /// Wait for every camera thread to end (after `stop`); each says
    /// offline as it goes.
    pub async fn wait(self) {
        match crate::threads::join_counting_panics(self.threads).await {
            Ok(0) => {}
            Ok(n) => error!(cameras = n, "camera threads panicked"),
            Err(err) => error!(error = %err, "joining the camera threads failed"),
        }
    }
}

/// How a stream of frames ended.
enum Ended {
    Stopped,
    Gone { reason: String, had_frames: bool },
}

/// One camera's loop: open, read frames, detect, capture, reopen.
struct Runner {
    camera: Arc<Shared>,
    settings: CameraSettings,
    source: Box<dyn FrameSource>,
    requests: mpsc::Receiver<CaptureRequest>,
    pending: Vec<CaptureRequest>,
    posters: mpsc::Sender<Poster>,
    stop: CancellationToken,
    opts: RunnerOptions,
    detector: Option<Detector>,
    /// A continuous capture the full queue refused, retried each frame.
    held: Option<Poster>,
    /// `camera:<name>`.
    source_label: String,
    /// The last state logged, so each change is logged once.
    logged_online: Option<bool>,
    bad_streak: u64,
}

impl Runner {
    fn new(
        camera: Arc<Shared>,
        settings: CameraSettings,
        source: Box<dyn FrameSource>,
        requests: mpsc::Receiver<CaptureRequest>,
        posters: mpsc::Sender<Poster>,
        stop: CancellationToken,
        opts: RunnerOptions,
    ) -> Self {
        let detector = (settings.mode == CameraMode::Continuous).then(|| {
            Detector::new(DetectorSettings {
                settle: Duration::from_millis(settings.settle_ms),
                motion_threshold: settings.motion_threshold,
                change_threshold: settings.change_threshold,
                min_structure: settings.min_structure,
            })
        });
        Self {
            source_label: format!("camera:{}", settings.name),
            camera,
            settings,
            source,
            requests,
            pending: Vec::new(),
            posters,
            stop,
            opts,
            detector,
            held: None,
            logged_online: None,
            bad_streak: 0,
        }
    }

    fn run_on_own_runtime(self) {
        let name = self.camera.name.clone();
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                let span = tracing::info_span!("camera", camera = %name);
                runtime.block_on(self.run().instrument(span));
            }
            Err(err) => {
                error!(camera = %name, error = %err, "cannot start the camera's runtime");
                self.camera
                    .status
                    .set_online(false, Some(format!("cannot start: {err}")));
            }
        }
    }

    async fn run(mut self) {
        let mut backoff = self.opts.backoff_min;
        loop {
            let opened = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                opened = self.source.open() => opened,
            };
            let reason = match opened {
                Ok(()) => match self.stream().await {
                    Ended::Stopped => break,
                    Ended::Gone { reason, had_frames } => {
                        if had_frames {
                            backoff = self.opts.backoff_min;
                        }
                        reason
                    }
                },
                Err(err) => err.to_string(),
            };
            self.source.close();
            self.went_offline(reason, backoff);
            if !self.wait_offline(backoff).await {
                break;
            }
            backoff = (backoff * 2).min(self.opts.backoff_max);
        }
        self.source.close();
        self.answer_pending(|name| CaptureError::Offline {
            name,
            reason: "the daemon is shutting down".into(),
        });
        self.camera.status.set_online(false, Some("stopped".into()));
        info!("camera stopped");
    }

    fn went_offline(&mut self, reason: String, retry_in: Duration) {
        self.camera.status.set_online(false, Some(reason.clone()));
        if let Some(detector) = &mut self.detector {
            detector.reset_motion();
        }
        self.answer_pending(|name| CaptureError::Offline {
            name,
            reason: reason.clone(),
        });
        if self.logged_online != Some(false) {
            self.logged_online = Some(false);
            warn!(
                error = %reason,
                retry_in_ms = retry_in.as_millis(),
                "camera offline; retrying with backoff (logged again when it is back)"
            );
        } else {
            debug!(error = %reason, "camera still offline");
        }
    }

    /// Wait out the backoff, answering captures at once; false on stop.
    async fn wait_offline(&mut self, backoff: Duration) -> bool {
        let until = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return false,
                () = tokio::time::sleep_until(until) => return true,
                request = self.requests.recv() => {
                    let Some(request) = request else { return true };
                    let status = self.camera.status.snapshot();
                    let _ = request.reply.send(Err(CaptureError::Offline {
                        name: status.name,
                        reason: status.last_error.unwrap_or_default(),
                    }));
                }
            }
        }
    }

    async fn stream(&mut self) -> Ended {
        let mut had_frames = false;
        loop {
            let next = tokio::select! {
                biased;
                () = self.stop.cancelled() => return Ended::Stopped,
                next = self.source.next_frame() => next,
            };
            while let Ok(request) = self.requests.try_recv() {
                self.pending.push(request);
            }
            match next {
                Ok(frame) => {
                    had_frames = true;
                    self.on_frame(&frame);
                }
                Err(SourceError::BadFrame(reason)) => self.on_bad_frame(reason),
                Err(SourceError::Gone(reason) | SourceError::Unsupported(reason)) => {
                    return Ended::Gone { reason, had_frames };
                }
            }
        }
    }

    fn on_frame(&mut self, frame: &Frame) {
        let status = &self.camera.status;
        // Online before counting the frame: the first frame ever is not a
        // reconnect.
        if status.set_online(true, None) || self.logged_online != Some(true) {
            info!(source = %status.snapshot().source, "camera online");
            self.logged_online = Some(true);
        }
        status.frame(now_ms());
        self.retry_held();
        if self.detector.is_none() && self.pending.is_empty() {
            return; // an idle on-demand camera: no decoding
        }
        let image = match frame.decode() {
            Ok(image) => image,
            Err(err) => return self.on_bad_frame(err.to_string()),
        };
        if self.bad_streak > 0 {
            info!(bad_frames = self.bad_streak, "camera frames are good again");
            self.bad_streak = 0;
        }
        let roi = Rect::from_fractions(self.settings.roi, image.width(), image.height());
        let signature = self.detector.is_some().then(|| Signature::of(&image, roi));
        if !self.pending.is_empty() {
            self.capture_requested(frame, &image, roi);
            if let (Some(detector), Some(signature)) = (&mut self.detector, &signature) {
                detector.captured(signature.clone());
            }
        }
        let (Some(detector), Some(signature)) = (&mut self.detector, signature) else {
            return;
        };
        match detector.observe(signature, frame.at) {
            Verdict::Capture => self.capture_detected(frame, &image, roi),
            Verdict::Empty => debug!("scene settled: empty"),
            Verdict::SamePoster => debug!("scene settled: the poster captured last"),
            Verdict::Unchanged => debug!("scene settled: unchanged"),
            Verdict::Waiting | Verdict::Settled => {}
        }
    }

    fn on_bad_frame(&mut self, reason: String) {
        if self.bad_streak == 0 {
            warn!(error = %reason, "camera sent a bad frame; skipping it (logged once per run)");
        }
        self.bad_streak += 1;
        self.camera.status.bad_frame(reason.clone());
        self.answer_pending(|name| CaptureError::BadFrame {
            name,
            reason: reason.clone(),
        });
    }

    fn answer_pending(&mut self, error: impl Fn(String) -> CaptureError) {
        for request in self.pending.drain(..) {
            let _ = request.reply.send(Err(error(self.camera.name.clone())));
        }
    }

    /// The poster's bytes: the camera's own JPEG when the whole frame is
    /// wanted, else the region (or the converted frame) encoded as JPEG.
    fn poster_bytes(&self, frame: &Frame, image: &RgbImage, roi: Rect) -> Result<Bytes, String> {
        if let (FrameData::Jpeg(jpeg), None) = (&frame.data, self.settings.roi) {
            return Ok(jpeg.clone());
        }
        let region = image::imageops::crop_imm(image, roi.x, roi.y, roi.width, roi.height);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, CAPTURE_JPEG_QUALITY)
            .encode_image(&*region)
            .map_err(|err| format!("encoding the capture as JPEG failed: {err}"))?;
        Ok(Bytes::from(out))
    }

    fn new_poster(&self, bytes: Bytes) -> Poster {
        Poster {
            bytes,
            source: self.source_label.clone(),
            received_at: now_ms(),
            reply: None,
            watched: None,
        }
    }

    fn capture_requested(&mut self, frame: &Frame, image: &RgbImage, roi: Rect) {
        let bytes = match self.poster_bytes(frame, image, roi) {
            Ok(bytes) => bytes,
            Err(reason) => {
                return self.answer_pending(|name| CaptureError::BadFrame {
                    name,
                    reason: reason.clone(),
                })
            }
        };
        for request in std::mem::take(&mut self.pending) {
            let (reply, answer) = oneshot::channel();
            let mut poster = self.new_poster(bytes.clone());
            poster.reply = Some(reply);
            let outcome = match self.posters.try_send(poster) {
                Ok(()) => {
                    self.counted(&bytes, "captured on request");
                    Ok(answer)
                }
                Err(mpsc::error::TrySendError::Full(_)) => Err(IngestError::QueueFull.into()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(IngestError::ShuttingDown.into()),
            };
            let _ = request.reply.send(outcome);
        }
    }

    fn capture_detected(&mut self, frame: &Frame, image: &RgbImage, roi: Rect) {
        let bytes = match self.poster_bytes(frame, image, roi) {
            Ok(bytes) => bytes,
            Err(reason) => return warn!(error = %reason, "a settled poster was not captured"),
        };
        let poster = self.new_poster(bytes);
        if self.held.replace(poster).is_some() {
            self.camera.status.dropped();
            warn!("the classify queue is still full: an older capture was replaced by this one");
        }
        self.retry_held();
    }

    /// Queue the held capture if there is room now.
    fn retry_held(&mut self) {
        let Some(poster) = self.held.take() else {
            return;
        };
        let bytes = poster.bytes.clone();
        match self.posters.try_send(poster) {
            Ok(()) => self.counted(&bytes, "poster captured"),
            Err(mpsc::error::TrySendError::Full(poster)) => self.held = Some(poster),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn counted(&self, bytes: &[u8], what: &'static str) {
        let id = PosterId::of_bytes(bytes);
        info!(poster.id = %id, "{what}");
        self.camera
            .status
            .captured(id.as_str().to_owned(), now_ms());
    }
}
