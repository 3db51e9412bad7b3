//! The daemon's wiring: the only place that creates the pipeline's
//! channels, starts its stages and hands them to the shutdown supervisor.
//!
//! ```text
//! HTTP upload ───┐
//! MQTT ingest ───┤
//! cameras ───────┤
//! watched folder ┴─(PosterQueue, inference.queue_size)─> classify workers
//!     decode → thumbnail → model → store (poster + classification + outbox
//!     row, one transaction) → publisher → MQTT QoS 1; dashboard live feed
//! ```
//!
//! [`shutdown`] stops the stages in that order under one deadline;
//! [`maintenance`] runs retention and the systemd watchdog meanwhile.

pub mod first_start;
pub mod maintenance;
pub mod shutdown;

use crate::camera::{self, CameraRegistry, Cameras, RunnerOptions};
use crate::classify::{Worker, Workers};
use crate::config::Config;
use crate::ingest::http::{body_limit, Uploads};
use crate::ingest::watch::{WatchOptions, Watcher};
use crate::learning::{Learning, Options as LearningOptions};
use crate::model::{default_model_dir, Classifier};
use crate::poster::PosterEvent;
use crate::publish::{PublishHandle, PublishOptions, Publisher, Topics};
use crate::queue::PosterQueue;
use crate::store::{Store, StoreHandle};
use crate::systemd;
use crate::telemetry::Metrics;
use crate::vision::{DecodeBudget, DecodeLimits};
use crate::web::{self, WebState};
use anyhow::Context as _;
use shutdown::Stages;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Jobs waiting for the store's writer thread. Each worker has at most one
/// write queued, the rest are reads from `/metrics`, `/readyz` and the
/// publisher; a full queue slows them down, it never drops anything.
const STORE_QUEUE: usize = 64;

/// A started daemon, for tests and `run_with`.
pub struct Running {
    /// Where the HTTP server listens (the port is real when 0 was asked).
    pub addr: SocketAddr,
    /// The publisher's status (broker connected, published counts).
    pub publish: PublishHandle,
    /// The pipeline's counters.
    pub metrics: Arc<Metrics>,
    /// The cameras' status and capture requests.
    pub cameras: CameraRegistry,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Wait until the daemon has shut down (cancel its token to ask).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("the daemon's supervisor task panicked")?
    }
}

/// Run the daemon until `shutdown` is cancelled, then shut down in order.
pub async fn run_with(
    cfg: Config,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(cfg, http, shutdown).await?.wait().await
}

/// Load the model, open the store, start every stage and serve; returns
/// once the daemon is ready (READY=1 has been sent). The listener is bound
/// by the caller, so a test can use port 0 and read the address back.
pub async fn start(
    cfg: Config,
    http: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let started = Instant::now();
    let addr = http
        .local_addr()
        .context("reading the HTTP listener's address")?;

    let model_dir = cfg
        .inference
        .model_dir
        .clone()
        .unwrap_or_else(default_model_dir);
    let variant = cfg.inference.variant.map(|v| v.as_str());
    let mut runtime = cfg.inference.runtime_options();
    runtime.cache_dir = cfg.store.path.parent().map(|p| p.join("tensorrt-cache"));
    let named = runtime.library_named();
    let classifier = {
        let dir = model_dir.clone();
        tokio::task::spawn_blocking(move || Classifier::load_with(&dir, variant, &runtime))
            .await
            .context("the model loader panicked")?
            .with_context(|| format!("loading the model from {}", model_dir.display()))?
    };
    match classifier.fallback() {
        Some(why) if named => tracing::warn!("{why}"),
        Some(why) => tracing::info!("{why}"),
        None => {}
    }
    tracing::info!(
        model = %classifier.base_name(),
        runtime = classifier.runtime().as_str(),
        "backbone on {}",
        classifier.runtime_about()
    );

    let store_path = cfg.store.path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&store_path))
        .await
        .context("opening the store panicked")?
        .with_context(|| {
            format!(
                "opening the store at {} (store.path; its folder must exist and be writable)",
                cfg.store.path.display()
            )
        })?;
    let (store, writer) = StoreHandle::spawn(store, STORE_QUEUE)?;

    let metrics = Arc::new(Metrics::default());
    let queue_size = usize::try_from(cfg.inference.queue_size)
        .unwrap_or(usize::MAX)
        .max(1);
    let (posters, queue) =
        PosterQueue::bounded(queue_size, u64::from(cfg.http.upload_memory_mb) << 20);
    // Checked before anything else starts: a wrong watch.dir fails the start.
    let watcher = match &cfg.watch.dir {
        Some(dir) => Some(Watcher::new(
            WatchOptions {
                dir: dir.clone(),
                settle: Duration::from_millis(cfg.watch.settle_ms),
                max_bytes: cfg.http.max_upload_bytes,
            },
            &posters,
            store.clone(),
            Arc::clone(&metrics),
        )?),
        None => None,
    };
    // Checked before anything starts too: a source this build cannot read
    // (a V4L2 device without the `camera` feature) fails the start.
    let camera_setups = camera::setups_from_config(&cfg)?;

    let (live, _) = tokio::sync::broadcast::channel::<PosterEvent>(web::LIVE_BUFFER);
    let genres = crate::model::live::GenreList::new(classifier.head().head.labels());
    let opts = PublishOptions::from_config(&cfg, classifier.base_name())?;
    let mqtt_inputs = crate::ingest::mqtt::MqttInputs {
        publish: opts.clone(),
        ha_status: opts
            .discovery_prefix
            .as_deref()
            .map(crate::publish::ha_status_topic),
        store: store.clone(),
        labels: genres.clone(),
    };
    let (publisher, publish) = Publisher::new(opts, store.clone())?;
    // Its own token: the publisher stops last, after the pipeline drained.
    let publisher_stop = CancellationToken::new();
    let publisher_task = tokio::spawn(publisher.run(publisher_stop.clone()));

    // The active head is restored before the first poster is classified.
    let manifest = crate::model::manifest::Manifest::load(&model_dir)
        .with_context(|| format!("reading the model manifest in {}", model_dir.display()))?;
    let learning = Learning::start(
        &classifier,
        store.clone(),
        &model_dir,
        &manifest,
        LearningOptions {
            publish: Some((
                publish.clone(),
                Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id).model,
            )),
            device_id: cfg.device_id.clone(),
            threads: cfg.learning.effective_threads(),
            genres,
            extra_genres: cfg.learning.extra_genres.clone(),
        },
    )
    .await
    .context("restoring the genre heads from the store")?;

    let upload = usize::try_from(cfg.http.max_upload_bytes).unwrap_or(usize::MAX);
    let worker = Worker {
        classifier: classifier.clone(),
        limits: DecodeLimits {
            max_bytes: upload,
            max_pixels: cfg.inference.max_pixels,
            ..DecodeLimits::default()
        },
        budget: Arc::new(DecodeBudget::new(
            u64::from(cfg.inference.decode_memory_mb) << 20,
        )),
        store: store.clone(),
        publish: publish.clone(),
        metrics: Arc::clone(&metrics),
        topic: Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id).poster,
        live: live.clone(),
    };
    let workers = Workers::spawn(worker, queue, cfg.inference.effective_threads())?;

    // The inputs: each holds a clone of `posters`; the queue closes when
    // the last of them is gone.
    let inputs = TaskTracker::new();
    if let Some(watcher) = watcher {
        inputs.spawn(watcher.run(shutdown.clone()));
    }
    let cameras = Cameras::start(camera_setups, &posters, &shutdown, RunnerOptions::default())
        .context("starting the camera threads")?;
    let camera_registry = cameras.registry();
    inputs.spawn(camera::availability::run(
        cameras,
        publish.clone(),
        Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id),
        shutdown.clone(),
    ));
    let uploads = Uploads {
        queue: posters.clone(),
        metrics: Arc::clone(&metrics),
        max_upload_bytes: cfg.http.max_upload_bytes,
    };
    let web = web_state(
        &cfg,
        manifest,
        &classifier,
        Wiring {
            learning: learning.clone(),
            uploads,
            store: store.clone(),
            publish: publish.clone(),
            live,
            cameras: camera_registry.clone(),
        },
    )?;
    let app = web::router(web, body_limit(cfg.http.max_upload_bytes)).layer(
        tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(u64::from(cfg.http.request_timeout_s)),
        ),
    );
    let limits = web::server::ServerLimits {
        max_connections: usize::try_from(cfg.http.max_connections).unwrap_or(usize::MAX),
        header_timeout: Duration::from_secs(u64::from(cfg.http.header_timeout_s)),
    };
    let http_task = inputs.spawn(web::server::serve(
        http,
        app,
        limits,
        shutdown.clone(),
        Arc::new(web::server::ServerStats::default()),
    ));
    inputs.spawn(crate::ingest::mqtt::run(
        mqtt_inputs,
        posters,
        camera_registry.clone(),
        publish.clone(),
        Arc::clone(&metrics),
        shutdown.clone(),
    ));
    inputs.close();

    let maintenance_stop = CancellationToken::new();
    let mut maintenance: Vec<JoinHandle<()>> = Vec::new();
    if let Some(every) = systemd::watchdog_interval() {
        maintenance.push(tokio::spawn(maintenance::watchdog(
            every,
            store.clone(),
            maintenance_stop.clone(),
        )));
    }
    if cfg.learning.retrain_after > 0 {
        maintenance.push(tokio::spawn(maintenance::auto_retrain(
            learning.clone(),
            u64::from(cfg.learning.retrain_after),
            store.clone(),
            maintenance_stop.clone(),
        )));
    }
    if cfg.store.retention_days.is_some() || cfg.store.retention_rows.is_some() {
        maintenance.push(tokio::spawn(maintenance::retention(
            cfg.store.retention_days,
            cfg.store.retention_rows,
            store.clone(),
            maintenance_stop.clone(),
        )));
    }
    if let Err(err) = systemd::ready() {
        warn!(error = %err, "systemd may time the start out");
    }
    info!(
        %addr,
        model = %classifier.name(),
        threads = cfg.inference.effective_threads(),
        queue = queue_size,
        store = %cfg.store.path.display(),
        broker = %cfg.mqtt.url,
        ready_in_ms = started.elapsed().as_millis(),
        "marquee is ready"
    );

    let stages = Stages {
        shutdown,
        inputs,
        http_task,
        workers,
        publisher_stop,
        publisher_task,
        maintenance_stop,
        maintenance,
        store,
        writer,
    };
    Ok(Running {
        addr,
        publish,
        metrics,
        cameras: camera_registry,
        task: tokio::spawn(stages.supervise()),
    })
}

/// The running parts the dashboard is handed.
struct Wiring {
    learning: Learning,
    uploads: Uploads,
    store: StoreHandle,
    publish: PublishHandle,
    live: tokio::sync::broadcast::Sender<PosterEvent>,
    cameras: CameraRegistry,
}

/// The dashboard's state: model card, read connections, access rules.
fn web_state(
    cfg: &Config,
    manifest: crate::model::manifest::Manifest,
    classifier: &Classifier,
    wiring: Wiring,
) -> anyhow::Result<WebState> {
    let head = classifier.head();
    // A head learned here carries the shipped validation mix as its reference.
    let metrics = head
        .head
        .metrics
        .get("reference")
        .unwrap_or(&head.head.metrics);
    let reference = crate::analytics::insights::ReferenceMix::from_head_metrics(metrics);
    let card = web::model_card::CardSlot::new(
        manifest,
        classifier.variant(),
        web::model_card::CardRuntime::of(classifier),
        classifier.heads().clone(),
    );
    if reference.is_none() {
        warn!("the genre head carries no validation mix: the drift check is off");
    }
    let loopback = cfg.http.listen.ip().is_loopback();
    let dashboard = first_start::dashboard_config(cfg)?;
    if !dashboard.auth_required() && !loopback {
        warn!(
            listen = %cfg.http.listen,
            "dashboard.open is set and the dashboard listens beyond this device: anyone on \
             the network can use it (see `marquee dashboard hash-password`)"
        );
    }
    Ok(WebState {
        uploads: wiring.uploads,
        store: wiring.store,
        publish: wiring.publish,
        reader: crate::store::StoreReader::new(&cfg.store.path, READERS),
        live: wiring.live,
        model: card,
        learning: wiring.learning,
        reference: reference.map(Arc::new),
        auth: web::auth::Auth::new(&dashboard),
        config: Arc::new(dashboard),
        map: web::data::MapCache::default(),
        latest: web::data::LatestCache::default(),
        samples: Arc::new(web::samples::all()),
        device_id: Arc::from(cfg.device_id.as_str()),
        started: Instant::now(),
        listen_loopback: loopback,
        cameras: wiring.cameras,
        net: Arc::new(web::net::NetPolicy::new(
            &cfg.http.allowed_hosts,
            &cfg.http.trusted_proxies,
            web::net::hostname().as_deref(),
        )),
        metrics_token: cfg.http.metrics_token.as_deref().map(Arc::from),
    })
}

/// Read-only connections for the dashboard: two pages can load at once
/// while the writer commits; more would only compete for the same cores.
const READERS: usize = 2;
