//! The daemon: the only place that creates the pipeline's channels, spawns
//! its stages and orders their shutdown.
//!
//! ```text
//! HTTP upload ───┐
//! MQTT ingest ───┤
//! cameras ───────┤
//! watched folder ┴─(bounded mpsc<Poster>, inference.queue_size)─> N classify threads
//!     decode → thumbnail → model → StoreHandle::record (poster + classification
//!     + outbox row, one transaction) → PublishHandle::outbox_written → reply
//! publisher: outbox → MQTT QoS 1 → marked published on the broker's ack
//! ```
//!
//! Shutdown, in order, when `shutdown` is cancelled: the inputs stop (the
//! HTTP server stops accepting and finishes the requests it has, which wait
//! for their posters); the classify queue closes once every input is gone,
//! and the workers drain it; then the publisher gets its grace period to
//! deliver the backlog and says `offline`; last, the store's writer thread
//! finishes its queue and closes the database. A result committed to the
//! outbox and not yet published is delivered by the next start.

use crate::camera::{self, CameraRegistry, Cameras, RunnerOptions};
use crate::config::Config;
use crate::ingest::http::{body_limit, HttpState};
use crate::ingest::watch::{WatchOptions, Watcher};
use crate::ingest::{IngestError, Poster};
use crate::metrics::Metrics;
use crate::model::{default_model_dir, Classifier, ClassifyError, StageTimes};
use crate::publish::{Inbound, PosterEvent, PublishHandle, PublishOptions, Publisher, Topics};
use crate::store::{
    now_ms, NewClassification, NewPoster, OutboxMessage, PosterId, Qos, Store, StoreHandle,
    StoreWriter, WatchedFile,
};
use crate::systemd;
use crate::vision::{self, DecodeLimits};
use crate::web::{self, WebState};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, info_span, warn};

/// Jobs waiting for the store's writer thread. Each worker has at most one
/// write queued, the rest are reads from `/metrics`, `/readyz` and the
/// publisher; a full queue slows them down, it never drops anything.
const STORE_QUEUE: usize = 64;

/// Longest side of the thumbnail kept with each poster, for the dashboard.
pub const THUMBNAIL_SIDE: u32 = 160;

/// How long the inputs get to finish what they accepted after a shutdown
/// request. With the publisher's grace period (3 s) this stays well under
/// the unit's `TimeoutStopSec=30s`.
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

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
    let classifier = {
        let dir = model_dir.clone();
        tokio::task::spawn_blocking(move || Classifier::load(&dir, variant))
            .await
            .context("the model loader panicked")?
            .with_context(|| format!("loading the model from {}", model_dir.display()))?
    };

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
    let (posters, queue) = mpsc::channel::<Poster>(queue_size);
    // Checked before anything else starts: a wrong watch.dir fails the start.
    let watcher = match &cfg.watch.dir {
        Some(dir) => Some(Watcher::new(
            WatchOptions {
                dir: dir.clone(),
                settle: Duration::from_millis(cfg.watch.settle_ms),
                max_bytes: cfg.http.max_upload_bytes,
            },
            posters.clone(),
            store.clone(),
            Arc::clone(&metrics),
        )?),
        None => None,
    };
    // Checked before anything starts too: a source this build cannot read
    // (a V4L2 device without the `camera` feature) fails the start.
    let camera_setups = camera::setups_from_config(&cfg).map_err(anyhow::Error::msg)?;

    let (live, _) = tokio::sync::broadcast::channel::<PosterEvent>(web::LIVE_BUFFER);
    let opts = PublishOptions::from_config(&cfg, classifier.name())?;
    let (publisher, publish, inbound) = Publisher::new(opts, store.clone())?;
    // Its own token: the publisher stops last, after the pipeline drained.
    let publisher_stop = CancellationToken::new();
    let publisher_task = tokio::spawn(publisher.run(publisher_stop.clone()));

    let upload = usize::try_from(cfg.http.max_upload_bytes).unwrap_or(usize::MAX);
    let worker = Worker {
        classifier: classifier.clone(),
        limits: DecodeLimits {
            max_bytes: upload,
            ..DecodeLimits::default()
        },
        store: store.clone(),
        publish: publish.clone(),
        metrics: Arc::clone(&metrics),
        topic: Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id).poster,
        live: live.clone(),
    };
    let workers = spawn_workers(worker, queue, cfg.inference.effective_threads())?;

    // The inputs: each holds a clone of `posters`; the queue closes when
    // the last of them is gone.
    let inputs = TaskTracker::new();
    if let Some(watcher) = watcher {
        inputs.spawn(watcher.run(shutdown.clone()));
    }
    let cameras = Cameras::start(camera_setups, &posters, &shutdown, RunnerOptions::default())
        .context("starting the camera threads")?;
    let camera_registry = cameras.registry();
    metrics.attach_cameras(camera_registry.clone());
    inputs.spawn(camera::availability::run(
        cameras,
        publish.clone(),
        Topics::new(&cfg.mqtt.topic_prefix, &cfg.device_id),
        shutdown.clone(),
    ));
    let http_state = HttpState {
        posters: posters.clone(),
        store: store.clone(),
        publish: publish.clone(),
        metrics: Arc::clone(&metrics),
        max_upload_bytes: cfg.http.max_upload_bytes,
        model: classifier.name().to_owned(),
    };
    let web = web_state(
        &cfg,
        &model_dir,
        &classifier,
        http_state,
        live,
        camera_registry.clone(),
    )?;
    let app = web::router(web).layer(axum::extract::DefaultBodyLimit::max(body_limit(
        cfg.http.max_upload_bytes,
    )));
    let stop_http = shutdown.clone();
    let http_task = inputs.spawn(async move {
        axum::serve(
            http,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop_http.cancelled().await })
        .await
    });
    inputs.spawn(forward_mqtt_ingest(
        inbound,
        posters,
        camera_registry.clone(),
        shutdown.clone(),
        Arc::clone(&metrics),
    ));
    inputs.close();

    let watchdog_stop = CancellationToken::new();
    let watchdog_task = systemd::watchdog_interval()
        .map(|every| tokio::spawn(watchdog(every, store.clone(), watchdog_stop.clone())));
    let retention_task = (cfg.store.retention_days.is_some() || cfg.store.retention_rows.is_some())
        .then(|| {
            tokio::spawn(retention(
                cfg.store.retention_days,
                cfg.store.retention_rows,
                store.clone(),
                watchdog_stop.clone(),
            ))
        });
    if let Err(err) = systemd::ready() {
        warn!(error = %err, "systemd may time the start out");
    }
    info!(
        %addr,
        model = classifier.name(),
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
        watchdog_stop,
        watchdog_task,
        retention_task,
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

/// The dashboard's state: model card, read connections, access rules.
fn web_state(
    cfg: &Config,
    model_dir: &std::path::Path,
    classifier: &Classifier,
    http: HttpState,
    live: tokio::sync::broadcast::Sender<PosterEvent>,
    cameras: crate::camera::CameraRegistry,
) -> anyhow::Result<WebState> {
    let manifest = crate::model::manifest::Manifest::load(model_dir)
        .with_context(|| format!("reading the model manifest in {}", model_dir.display()))?;
    let head = classifier.head();
    let card =
        web::model_card::ModelCard::new(&manifest, head, classifier.variant(), classifier.name());
    let reference = crate::analytics::insights::ReferenceMix::from_head_metrics(&head.metrics);
    if reference.is_none() {
        warn!("the genre head carries no validation mix: the drift check is off");
    }
    let loopback = cfg.http.listen.ip().is_loopback();
    if !cfg.dashboard.auth_required() && !loopback {
        warn!(
            listen = %cfg.http.listen,
            "no dashboard password or API token is set and the dashboard listens beyond \
             this device: anyone on the network can use it (see `marquee dashboard hash-password`)"
        );
    }
    Ok(WebState {
        http,
        reader: crate::store::StoreReader::new(&cfg.store.path, READERS),
        live,
        model: Arc::new(card),
        reference: reference.map(Arc::new),
        config: Arc::new(cfg.dashboard.clone()),
        auth: web::auth::Auth::new(&cfg.dashboard),
        map: web::data::MapCache::default(),
        latest: web::data::LatestCache::default(),
        samples: Arc::new(web::samples::all()),
        device_id: Arc::from(cfg.device_id.as_str()),
        started: Instant::now(),
        listen_loopback: loopback,
        cameras,
    })
}

/// Read-only connections for the dashboard: two pages can load at once
/// while the writer commits; more would only compete for the same cores.
const READERS: usize = 2;

/// Everything shutdown has to stop, in the order it stops them.
struct Stages {
    shutdown: CancellationToken,
    inputs: TaskTracker,
    http_task: JoinHandle<std::io::Result<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    publisher_stop: CancellationToken,
    publisher_task: JoinHandle<()>,
    watchdog_stop: CancellationToken,
    /// `Some` under systemd with `WatchdogSec`; it holds a store handle.
    watchdog_task: Option<JoinHandle<()>>,
    /// `Some` when a retention limit is set; stopped by `watchdog_stop`.
    retention_task: Option<JoinHandle<()>>,
    store: StoreHandle,
    writer: StoreWriter,
}

impl Stages {
    async fn supervise(self) -> anyhow::Result<()> {
        let Self {
            shutdown,
            inputs,
            mut http_task,
            workers,
            publisher_stop,
            publisher_task,
            watchdog_stop,
            watchdog_task,
            retention_task,
            store,
            writer,
        } = self;

        // The HTTP server only ends by itself on an error: shut down then too.
        let early = tokio::select! {
            () = shutdown.cancelled() => None,
            ended = &mut http_task => Some(ended),
        };
        shutdown.cancel();
        if let Err(err) = systemd::stopping() {
            debug!(error = %err, "cannot tell systemd we are stopping");
        }
        info!("shutting down: inputs stop, in-flight posters drain");

        // 1. Inputs: they finish what they accepted (uploads wait for their
        //    results, which the workers are still producing).
        let mut failure: Option<anyhow::Error> = None;
        let http_outcome = match early {
            Some(ended) => Some(ended),
            None => tokio::time::timeout(DRAIN_DEADLINE, &mut http_task)
                .await
                .ok(),
        };
        match http_outcome {
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(err))) => {
                failure = Some(anyhow::Error::new(err).context("the HTTP server failed"));
            }
            Some(Err(join)) => failure = Some(anyhow::anyhow!("the HTTP server panicked: {join}")),
            None => {
                warn!(
                    "uploads still open after {}s; closing them",
                    DRAIN_DEADLINE.as_secs()
                );
                http_task.abort();
            }
        }
        if tokio::time::timeout(DRAIN_DEADLINE, inputs.wait())
            .await
            .is_err()
        {
            warn!("an input did not stop in time");
        }

        // 2. Workers: the queue is closed once the inputs are gone; they
        //    finish every poster in it and exit.
        match crate::threads::join_counting_panics(workers).await {
            Ok(0) => {}
            Ok(n) => error!(workers = n, "classify workers panicked"),
            Err(err) => error!(error = %err, "joining the classify workers failed"),
        }

        // 3. Publisher: deliver what its grace period allows, say offline.
        publisher_stop.cancel();
        if let Err(err) = publisher_task.await {
            error!(error = %err, "the publisher panicked");
        }
        watchdog_stop.cancel();
        for task in [watchdog_task, retention_task].into_iter().flatten() {
            let _ = task.await;
        }

        // 4. Store: every handle is gone once this one is; the writer
        //    runs what is queued and closes the database.
        drop(store);
        match tokio::task::spawn_blocking(move || writer.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => error!(error = %err, "the store's writer thread failed"),
            Err(err) => error!(error = %err, "joining the store's writer failed"),
        }
        info!("marquee stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// What each classify worker needs; cloned per thread.
#[derive(Clone)]
struct Worker {
    classifier: Classifier,
    limits: DecodeLimits,
    store: StoreHandle,
    publish: PublishHandle,
    metrics: Arc<Metrics>,
    /// `<prefix>/<device_id>/poster`.
    topic: String,
    /// The dashboard's live feed; nobody listening is fine.
    live: tokio::sync::broadcast::Sender<PosterEvent>,
}

/// Start `n` threads sharing one queue. Plain threads, not the async
/// runtime's blocking pool: inference is long CPU work, and a fixed count
/// sized by the board profile is what keeps the board responsive.
fn spawn_workers(
    worker: Worker,
    queue: mpsc::Receiver<Poster>,
    n: usize,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    // One receiver for all: the worker holding the lock waits for the next
    // poster, the others wait for the lock. Either way they are idle.
    let queue = Arc::new(Mutex::new(queue));
    // Commits are awaited on one thread of their own, in submission order, so
    // a worker goes on to the next poster while the last one is fsynced.
    let (commits, pending) = std::sync::mpsc::sync_channel::<PendingCommit>(n.max(1) * 4);
    let mut threads = (0..n.max(1))
        .map(|i| {
            let worker = worker.clone();
            let queue = Arc::clone(&queue);
            let commits = commits.clone();
            std::thread::Builder::new()
                .name(format!("marquee-classify-{i}"))
                .spawn(move || worker.run(&queue, &commits))
                .context("starting a classify thread")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(commits);
    // Last in the list: joined after the workers, it ends once every
    // worker has gone and every commit has been answered.
    threads.push(
        std::thread::Builder::new()
            .name("marquee-commit".into())
            .spawn(move || worker.finish_commits(&pending))
            .context("starting the commit thread")?,
    );
    Ok(threads)
}

/// The store's answer to one queued poster transaction.
type PendingAnswer =
    tokio::sync::oneshot::Receiver<Result<crate::store::RecordOutcome, crate::store::StoreError>>;

/// A classified poster whose store transaction has been queued.
struct PendingCommit {
    poster: Poster,
    event: PosterEvent,
    inference: Duration,
    span: tracing::Span,
    answer: PendingAnswer,
}

impl Worker {
    fn run(
        &self,
        queue: &Mutex<mpsc::Receiver<Poster>>,
        commits: &std::sync::mpsc::SyncSender<PendingCommit>,
    ) {
        loop {
            let next = queue
                .lock()
                // Poisoned: another worker panicked while waiting; the
                // receiver itself is intact.
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .blocking_recv();
            let Some(poster) = next else {
                return; // every input is gone and the queue is empty
            };
            self.handle(poster, commits);
        }
    }

    fn handle(&self, poster: Poster, commits: &std::sync::mpsc::SyncSender<PendingCommit>) {
        let id = PosterId::of_bytes(&poster.bytes);
        let span = info_span!("poster", poster.id = %id, source = %poster.source);
        let entered = span.enter();
        match self.classify_and_submit(&id, &poster) {
            Ok((event, inference, answer)) => {
                debug!(tags = ?event.tags, "classified");
                drop(entered);
                let pending = PendingCommit {
                    poster,
                    event,
                    inference,
                    span,
                    answer,
                };
                if let Err(std::sync::mpsc::SendError(pending)) = commits.send(pending) {
                    // The commit thread is gone (it never is while workers
                    // run); answer here rather than leave the client hanging.
                    self.complete(pending);
                }
            }
            Err(err) => {
                drop(entered);
                let _entered = span.enter();
                self.done(poster, Err(err));
            }
        }
    }

    /// Wait for each queued commit in order, then answer and notify.
    fn finish_commits(&self, pending: &std::sync::mpsc::Receiver<PendingCommit>) {
        for commit in pending {
            self.complete(commit);
        }
    }

    fn complete(&self, commit: PendingCommit) {
        let PendingCommit {
            poster,
            event,
            inference,
            span,
            answer,
        } = commit;
        let _entered = span.enter();
        let stored = answer
            .blocking_recv()
            .unwrap_or(Err(crate::store::StoreError::WriterGone));
        let result = match stored {
            Ok(outcome) => {
                self.publish.outbox_written();
                // No receiver (no dashboard open) is not an error.
                let _ = self.live.send(event.clone());
                self.metrics.poster_done(&poster.source, inference);
                debug!(new_poster = outcome.new_poster, "stored");
                Ok(event)
            }
            Err(err) => Err(IngestError::from(err)),
        };
        self.done(poster, result);
    }

    /// Count, log and answer one poster's outcome.
    fn done(&self, mut poster: Poster, result: Result<PosterEvent, IngestError>) {
        if let Err(err) = &result {
            self.metrics.error(err.kind());
            match (err, &poster.watched) {
                (IngestError::Store(_), _) => error!(error = %err, "result lost"),
                (_, Some(file)) if err.is_permanent() => self.refuse_watched(file, err),
                (IngestError::Model(_), _) => warn!(error = %err, "poster not classified"),
                _ => info!(error = %err, "poster refused"),
            }
        }
        if let Some(reply) = poster.reply.take() {
            // The client may have gone; the result is stored either way.
            let _ = reply.send(result);
        }
    }

    /// A watched file nobody else hears about: say which file and why, and
    /// record it as failed before answering the watcher, so neither the next
    /// poll nor the next start tries it again.
    fn refuse_watched(&self, file: &WatchedFile, err: &IngestError) {
        let path = String::from_utf8_lossy(&file.path).into_owned();
        warn!(
            %path,
            error = %err,
            "watched file refused; it is not retried unless it changes"
        );
        let file = file.clone();
        let reason = err.to_string();
        if let Err(err) = self
            .store
            .blocking_call(move |s| s.mark_watched_failed(&file, &reason))
        {
            // Only costs one more attempt after a restart.
            warn!(%path, error = %err, "cannot record the refused file");
        }
    }

    /// Classify and queue the store transaction; the commit is awaited by
    /// the commit thread.
    fn classify_and_submit(
        &self,
        id: &PosterId,
        poster: &Poster,
    ) -> Result<(PosterEvent, Duration, PendingAnswer), IngestError> {
        let t = Instant::now();
        // Decoded once here, for the model and for the thumbnail.
        let image = vision::decode(&poster.bytes, &self.limits)?;
        let times = StageTimes {
            decode: t.elapsed(),
            ..StageTimes::default()
        };
        let (prediction, features, _times) = self
            .classifier
            .classify_image_with_features(&image, times)
            .map_err(|err| match err {
                ClassifyError::Image(err) => IngestError::from(err),
                ClassifyError::Backbone(err) => IngestError::Model(err.to_string()),
            })?;
        let inference = t.elapsed();

        let thumbnail = match vision::thumbnail_jpeg(&image, THUMBNAIL_SIDE) {
            Ok(jpeg) => Some(jpeg),
            Err(err) => {
                // The dashboard shows a placeholder; the result matters more.
                warn!(error = %err, "no thumbnail");
                None
            }
        };
        let ts = now_ms();
        let model = self.classifier.name().to_owned();
        let event = PosterEvent::new(id.as_str(), &poster.source, &prediction, &model, ts);
        let payload = event
            .to_json()
            .map_err(|err| IngestError::Model(err.to_string()))?;
        let record = NewPoster {
            id: id.clone(),
            source: poster.source.clone(),
            seen_at_ms: poster.received_at,
            size_bytes: u64::try_from(poster.bytes.len()).unwrap_or(u64::MAX),
            width: image.width(),
            height: image.height(),
            thumbnail,
            features: Some(features),
        };
        let classification = NewClassification {
            model,
            prediction,
            latency_ms: inference.as_secs_f64() * 1000.0,
            created_at_ms: ts,
        };
        let message = OutboxMessage {
            topic: self.topic.clone(),
            payload,
            qos: Qos::AtLeastOnce,
            retain: false,
        };
        // Committed (fsynced) before anyone hears of the result; a watched
        // file is marked done in the same transaction.
        let watched = poster.watched.clone();
        let answer = self.store.blocking_submit(move |s| match &watched {
            Some(file) => s.record_watched(&record, &classification, &[message], file),
            None => s.record(&record, &classification, &[message]),
        })?;
        Ok((event, inference, answer))
    }
}

/// Images published on `<prefix>/<device_id>/ingest` become posters.
/// When the queue is full this waits: the publisher's inbound queue then
/// fills and it drops (and counts) further images, rather than this task
/// growing memory. Requests on `<prefix>/<device_id>/capture` go to the
/// cameras; the result is published like any other.
async fn forward_mqtt_ingest(
    mut inbound: mpsc::Receiver<Inbound>,
    posters: mpsc::Sender<Poster>,
    cameras: CameraRegistry,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) {
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            message = inbound.recv() => message,
        };
        match message {
            None => return,
            Some(Inbound::Ingest(bytes)) => {
                let poster = Poster {
                    bytes,
                    source: "mqtt".to_owned(),
                    received_at: now_ms(),
                    reply: None,
                    watched: None,
                };
                tokio::select! {
                    biased;
                    () = stop.cancelled() => {
                        // Not stored: the broker already has our ack for it.
                        metrics.error(IngestError::ShuttingDown.kind());
                        warn!("an MQTT ingest image was dropped at shutdown");
                        return;
                    }
                    sent = posters.send(poster) => if sent.is_err() { return },
                }
            }
            Some(Inbound::Capture(payload)) => {
                let cameras = cameras.clone();
                // Its own task: waiting for a frame must not hold up ingest.
                tokio::spawn(async move {
                    let name = match camera::availability::capture_target(&payload) {
                        Ok(name) => name,
                        Err(reason) => return warn!(%reason, "MQTT capture request refused"),
                    };
                    match cameras.queue_capture(name.as_deref()).await {
                        Ok(_) => debug!(camera = ?name, "MQTT capture queued"),
                        Err(err) => warn!(error = %err, "MQTT capture request refused"),
                    }
                });
            }
        }
    }
}

/// How often retention runs after the first run at start. Hourly keeps each
/// run's delete small (it holds the writer for one transaction) while the
/// limits are never overshot by more than an hour of history.
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Apply `store.retention_days` / `retention_rows` at start, then hourly.
/// The store never deletes unpublished outbox rows, however old.
async fn retention(
    days: Option<u32>,
    rows: Option<u64>,
    store: StoreHandle,
    stop: CancellationToken,
) {
    // The first tick fires at once: a board that was off for a month trims
    // its history as it starts, not an hour later.
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store
            .call(move |s| s.apply_retention(days, rows, now_ms()))
            .await
        {
            Ok(report) => info!(
                classifications = report.classifications,
                posters = report.posters,
                outbox = report.outbox,
                "retention applied"
            ),
            // The next run tries again; history only grows meanwhile.
            Err(err) => warn!(error = %err, "retention failed"),
        }
    }
}

/// WATCHDOG=1 while the store's writer answers: a wedged writer stalls
/// the whole pipeline, and systemd should restart the daemon then.
async fn watchdog(every: Duration, store: StoreHandle, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = store.call(|s| s.schema_version());
        match tokio::time::timeout(every, probe).await {
            Ok(Ok(_)) => {
                if let Err(err) = systemd::ping() {
                    warn!(error = %err, "watchdog ping failed");
                }
            }
            Ok(Err(err)) => warn!(error = %err, "store failing: no watchdog ping"),
            Err(_) => warn!("store busy beyond the watchdog period: no ping"),
        }
    }
}
