//! Each camera's thread: open the source, read frames, judge them, capture,
//! and reopen with backoff when the camera goes away.

use super::change::{Detector, DetectorSettings, Rect, Signature, Verdict};
use super::registry::{CameraRegistry, CaptureError, CaptureRequest, Shared};
use super::setup::CameraSetup;
use super::source::{Frame, FrameData, FrameSource, SourceError};
use super::status::SharedStatus;
use crate::config::{CameraMode, CameraSettings, SourceSpec};
use crate::poster::{now_ms, Poster, PosterId};
use crate::queue::{PosterQueue, QueueInput, WhenFull};
use bytes::Bytes;
use image::RgbImage;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
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

/// The running cameras: their registry and threads.
pub struct Cameras {
    registry: CameraRegistry,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Cameras {
    /// Start one thread per camera. Each holds a handle on `queue`; they
    /// all end when `stop` is cancelled.
    pub fn start(
        setups: Vec<CameraSetup>,
        queue: &PosterQueue,
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
                queue,
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
    /// Captures asked for: refused at once when the queue is full.
    on_demand: QueueInput,
    /// Settled posters: the newest waits for room, older ones are dropped.
    continuous: QueueInput,
    stop: CancellationToken,
    opts: RunnerOptions,
    detector: Option<Detector>,
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
        queue: &PosterQueue,
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
            on_demand: queue.input(WhenFull::Reject),
            continuous: queue.input(WhenFull::KeepNewest),
            stop,
            opts,
            detector,
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
            let (poster, answer) = Poster::awaited(bytes.clone(), &self.source_label);
            let outcome = match self.on_demand.offer_now(poster) {
                Ok(_) => {
                    self.counted(&bytes, "captured on request");
                    Ok(answer)
                }
                Err(err) => Err(CaptureError::from(err)),
            };
            let _ = request.reply.send(outcome);
        }
    }

    fn capture_detected(&mut self, frame: &Frame, image: &RgbImage, roi: Rect) {
        let bytes = match self.poster_bytes(frame, image, roi) {
            Ok(bytes) => bytes,
            Err(reason) => return warn!(error = %reason, "a settled poster was not captured"),
        };
        let poster = Poster::new(bytes.clone(), &self.source_label);
        // Err: shutting down.
        if let Ok(offered) = self.continuous.offer_now(poster) {
            if offered.dropped.is_some() {
                self.camera.status.dropped();
                warn!(
                    "the classify queue is still full: an older capture was replaced by this one"
                );
            }
            if offered.queued {
                self.counted(&bytes, "poster captured");
            }
        }
    }

    /// Queue the held capture if there is room now.
    fn retry_held(&mut self) {
        let bytes = match self.continuous.held() {
            Some(poster) => poster.bytes.clone(),
            None => return,
        };
        if let Some(Ok(())) = self.continuous.retry_held() {
            self.counted(&bytes, "poster captured");
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
