//! The configuration's shape and its built-in defaults.
//!
//! Every struct denies unknown fields so a typo (`thread` for `threads`) is an
//! error rather than a silently ignored line. Every struct also takes
//! `#[serde(default)]`, so a layer only has to name what it changes.

use crate::model::backbone::{Provider, RuntimeChoice, RuntimeOptions};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The daemon's whole configuration, after every layer has been merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This device's name in MQTT topics and Home Assistant discovery.
    pub device_id: String,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub store: StoreConfig,
    pub watch: WatchConfig,
    pub inference: InferenceConfig,
    pub dashboard: DashboardConfig,
    pub learning: LearningConfig,
    /// Settings every `[[camera]]` falls back to; the board profile sets them.
    pub camera_defaults: CameraDefaults,
    /// `[[camera]]` tables: each one is watched by `camera::Cameras`.
    #[serde(rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            device_id: "marquee-01".to_owned(),
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            store: StoreConfig::default(),
            watch: WatchConfig::default(),
            inference: InferenceConfig::default(),
            dashboard: DashboardConfig::default(),
            learning: LearningConfig::default(),
            camera_defaults: CameraDefaults::default(),
            cameras: Vec::new(),
        }
    }
}

/// `[http]`: the upload endpoint, dashboard and health checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// An `IP:port`; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Largest accepted upload; larger bodies get 413 before they are read.
    pub max_upload_bytes: u64,
    /// Upload bodies held at once (being read or waiting in the queue), in
    /// MiB. An upload reserves its size before its body is read; when the
    /// room is taken it is answered 503 with `Retry-After`.
    pub upload_memory_mb: u32,
    /// Open connections at most; past it the one that has sent least of a
    /// request the longest is closed to make room (a slowloris cannot lock
    /// health checks and uploads out).
    pub max_connections: u32,
    /// A connection must send a request's headers within this long.
    pub header_timeout_s: u32,
    /// A request (body read, classification, answer) must be answered
    /// within this long; the live feed's stream is not bounded.
    pub request_timeout_s: u32,
    /// Host names (with or without `:port`) a state change may be addressed
    /// to besides IP addresses, `localhost` and this machine's host name,
    /// against DNS rebinding. Checked for every request in open mode.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are
    /// believed (the client's address for login lockouts, `Secure` cookies
    /// behind HTTPS).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// When set, `/metrics` needs `Authorization: Bearer <this token>`.
    /// Redacted by `config check`.
    pub metrics_token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_upload_bytes: 20 * 1024 * 1024,
            upload_memory_mb: 48,
            max_connections: 256,
            header_timeout_s: 10,
            request_timeout_s: 60,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            metrics_token: None,
        }
    }
}

/// `[dashboard]`: the web panel on `http.listen`, its access rules and the
/// business-impact defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve the pages (the JSON API and uploads stay on either way).
    pub enabled: bool,
    /// Argon2 PHC string of the login password (`marquee dashboard
    /// hash-password` makes one). Unset with no tokens: no login at all.
    pub password_hash: Option<String>,
    /// SHA-256 (hex) of each bearer token the API accepts (`marquee
    /// dashboard new-token` makes a token and its hash).
    pub api_token_sha256: Vec<String>,
    /// With a password set: visitors who have not logged in may read every
    /// page and GET endpoint, but change nothing.
    pub read_only_without_login: bool,
    /// No login at all, on purpose, even when listening beyond loopback.
    /// Without it and without credentials, a daemon that listens beyond
    /// loopback makes an admin password at first start (see the README).
    pub open: bool,
    /// How long a login lasts.
    pub session_hours: u32,
    /// Shown before amounts on the business-impact page.
    pub currency: String,
    /// Posters tagged per year; unset: the rate this device measured.
    pub posters_per_year: Option<f64>,
    /// Cost of tagging one poster by hand.
    pub manual_cost: f64,
    /// Cost of fixing one wrongly auto-tagged poster.
    pub correction_cost: f64,
    /// Auto-accept when the best genre's score is at least this.
    pub auto_accept: f64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            password_hash: None,
            api_token_sha256: Vec::new(),
            read_only_without_login: false,
            open: false,
            session_hours: 12,
            currency: "$".to_owned(),
            posters_per_year: None,
            manual_cost: 1.5,
            correction_cost: 0.5,
            auto_accept: 0.6,
        }
    }
}

impl DashboardConfig {
    /// Whether anyone has to prove who they are.
    pub fn auth_required(&self) -> bool {
        self.password_hash.is_some() || !self.api_token_sha256.is_empty()
    }
}

/// `[mqtt]`: the broker session. TLS is chosen by the `mqtts://` scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`; see [`MqttConfig::broker`].
    pub url: String,
    /// First topic level: topics are `<topic_prefix>/<device_id>/...`.
    pub topic_prefix: String,
    pub username: Option<String>,
    /// Redacted by [`Config::to_toml_string`](super::Config::to_toml_string).
    pub password: Option<String>,
    /// PEM CA bundle for `mqtts://` (default: the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key for `client_cert`.
    pub client_key: Option<PathBuf>,
    pub keep_alive_s: u16,
    /// How often the stats message is published.
    pub stats_interval_s: u32,
    /// Announce the device to Home Assistant (MQTT discovery).
    pub discovery: bool,
    pub discovery_prefix: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".to_owned(),
            topic_prefix: "marquee".to_owned(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive_s: 30,
            stats_interval_s: 60,
            discovery: true,
            discovery_prefix: "homeassistant".to_owned(),
        }
    }
}

/// `[store]`: the SQLite history and outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Relative paths are relative to the working directory (systemd sets it
    /// to the state directory).
    pub path: PathBuf,
    /// Drop history older than this. Unpublished outbox rows are never dropped.
    pub retention_days: Option<u32>,
    /// Keep at most this many classifications (and published outbox rows).
    pub retention_rows: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("marquee.db"),
            retention_days: None,
            retention_rows: None,
        }
    }
}

/// `[learning]`: retraining the genre head from corrections on the device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// Retrain by itself once this many more posters have been corrected
    /// than the last retrain learned from; 0 (the default) never does.
    /// A retrain makes a candidate: it is never promoted by itself.
    pub retrain_after: u32,
    /// Threads a retrain fits genres on (at the lowest CPU priority);
    /// 0 = every core, at most [`RETRAIN_THREADS_MAX`]. Each costs memory
    /// (see `config::memory`).
    pub threads: u32,
    /// Genres the shipped model does not know that corrections may name
    /// (e.g. `["Anime"]`); a retrain learns one once enough corrected
    /// posters have it. The dashboard can add more.
    pub extra_genres: Vec<String>,
}

/// Retrain threads for `learning.threads = 0`, whatever the core count.
pub const RETRAIN_THREADS_MAX: usize = 2;

impl LearningConfig {
    pub fn effective_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(RETRAIN_THREADS_MAX),
            n => n as usize,
        }
    }
}

/// `[watch]`: a folder whose new files are classified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// No folder, no watcher.
    pub dir: Option<PathBuf>,
    /// A file is read only once its size and mtime have not changed for this
    /// long, so a half-copied file is not classified.
    pub settle_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            dir: None,
            settle_ms: 1000,
        }
    }
}

/// Classify workers started for `threads = 0`, whatever the core count.
pub const AUTO_THREADS_MAX: usize = 6;

/// `[inference]`: the classify workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceConfig {
    /// Worker threads; 0 means one per available core, at most
    /// [`AUTO_THREADS_MAX`] (see [`InferenceConfig::effective_threads`]).
    pub threads: u32,
    /// Posters waiting for a worker; when full, inputs apply their full policy.
    pub queue_size: u32,
    /// Model folder with `manifest.json` (default: the shipped model).
    pub model_dir: Option<PathBuf>,
    /// Backbone variant (default: the one the manifest gives the runtime:
    /// int8 on tract, int8-full on onnxruntime).
    pub variant: Option<ModelVariant>,
    /// The backbone runtime: `tract` (built in), `onnxruntime` (needs a build
    /// with the `onnxruntime` feature and its library) or `auto`
    /// (onnxruntime when its library loads, else tract, saying why in the log).
    pub backend: RuntimeChoice,
    /// `libonnxruntime.so` for `onnxruntime`/`auto`; unset: `ORT_DYLIB_PATH`,
    /// else the library search path.
    pub onnxruntime_library: Option<PathBuf>,
    /// onnxruntime execution providers in order of preference; each must be
    /// in the loaded library (`tensorrt` and `cuda` need JetPack's build).
    pub onnxruntime_providers: Vec<Provider>,
    /// Largest image accepted, in pixels (width x height), checked from the
    /// header before anything is decoded.
    pub max_pixels: u64,
    /// Memory all image decodes may hold at once, in MiB; a decode waits
    /// for its share. At least one image of `max_pixels` must fit.
    pub decode_memory_mb: u32,
    /// The daemon's stated worst-case memory, in MiB: the model and
    /// runtime, `decode_memory_mb`, `http.upload_memory_mb` and the
    /// connections must fit in it (checked at start; see `memory_plan`).
    pub memory_budget_mb: u32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            queue_size: 16,
            model_dir: None,
            variant: None,
            backend: RuntimeChoice::Tract,
            onnxruntime_library: None,
            onnxruntime_providers: vec![Provider::Cpu],
            max_pixels: 40_000_000,
            decode_memory_mb: 128,
            memory_budget_mb: 620,
        }
    }
}

impl InferenceConfig {
    /// How the backbone is run: one onnxruntime session per worker.
    pub fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            choice: self.backend,
            library: self.onnxruntime_library.clone(),
            providers: self.onnxruntime_providers.clone(),
            sessions: self.effective_threads(),
            cache_dir: None,
        }
    }

    /// The worker count to start: `threads`, or the available cores when 0
    /// (at most [`AUTO_THREADS_MAX`]: each worker has its own inference
    /// memory, and the memory budget is stated for a known count).
    pub fn effective_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(AUTO_THREADS_MAX),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }
}

/// The backbone variants the shipped manifest carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelVariant {
    Int8,
    F32,
    /// All-QLinearConv int8, the file onnxruntime runs best.
    #[serde(rename = "int8-full")]
    Int8Full,
}

impl ModelVariant {
    /// The name the model manifest uses for this variant.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int8 => "int8",
            Self::F32 => "f32",
            Self::Int8Full => "int8-full",
        }
    }
}

/// How a camera takes pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraMode {
    /// A frame only when asked (button, HTTP or MQTT trigger).
    OnDemand,
    /// Frames all the time; only the newest waits for a worker.
    Continuous,
}

/// `[camera_defaults]`: what a `[[camera]]` gets for each setting it omits.
///
/// The change-detection thresholds are "difference scores": the mean
/// absolute difference of two normalised 32x24 grayscale thumbnails of the
/// region of interest, 0 for identical pictures and about 1 for unrelated
/// ones (see `camera::change`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraDefaults {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub mode: CameraMode,
    /// Continuous mode: how long a changed scene must hold still before it
    /// is captured. Long enough for a hand to let go of the poster.
    pub settle_ms: u64,
    /// Continuous mode: consecutive frames closer than this are "still".
    pub motion_threshold: f32,
    /// Continuous mode: a settled scene at least this far from the previous
    /// settled scene is a new presentation.
    pub change_threshold: f32,
    /// Continuous mode: a scene whose thumbnail has less structure than this
    /// (mean neighbour difference, in gray levels) is an empty wall.
    pub min_structure: f32,
}

impl Default for CameraDefaults {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 15,
            mode: CameraMode::OnDemand,
            settle_ms: 700,
            motion_threshold: 0.08,
            change_threshold: 0.25,
            min_structure: 4.0,
        }
    }
}

/// One `[[camera]]` table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// Unique; used as the poster's source (`camera:<name>`) and in topics.
    pub name: String,
    /// `/dev/video0` or `v4l2:0` (needs the `camera` cargo feature), an
    /// `http://` snapshot or MJPEG URL (`mjpeg+http://` forces MJPEG), or
    /// `synthetic:demo` (a drawn scene, for trying the appliance out).
    pub source: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub mode: Option<CameraMode>,
    /// Region of interest `[x, y, width, height]` as fractions of the frame
    /// (0.0 to 1.0), so it survives a change of resolution. Only this part
    /// is watched for changes and sent to the model.
    pub roi: Option<[f64; 4]>,
    pub settle_ms: Option<u64>,
    pub motion_threshold: Option<f32>,
    pub change_threshold: Option<f32>,
    pub min_structure: Option<f32>,
}

/// A camera with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSettings {
    pub name: String,
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub mode: CameraMode,
    /// Fractions of the frame; `None` is the whole frame.
    pub roi: Option<[f64; 4]>,
    pub settle_ms: u64,
    pub motion_threshold: f32,
    pub change_threshold: f32,
    pub min_structure: f32,
}

impl CameraConfig {
    /// Fill the settings this camera omits from `[camera_defaults]`.
    pub fn resolve(&self, defaults: &CameraDefaults) -> CameraSettings {
        CameraSettings {
            name: self.name.clone(),
            source: self.source.clone(),
            width: self.width.unwrap_or(defaults.width),
            height: self.height.unwrap_or(defaults.height),
            fps: self.fps.unwrap_or(defaults.fps),
            mode: self.mode.unwrap_or(defaults.mode),
            roi: self.roi,
            settle_ms: self.settle_ms.unwrap_or(defaults.settle_ms),
            motion_threshold: self.motion_threshold.unwrap_or(defaults.motion_threshold),
            change_threshold: self.change_threshold.unwrap_or(defaults.change_threshold),
            min_structure: self.min_structure.unwrap_or(defaults.min_structure),
        }
    }
}
