//! `marquee serve`: the daemon (also what `marquee` alone runs).

use crate::config::{Config, LoadOptions, Override};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Config file, layered over the board profile.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Board profile from firmware-config/ (default: detected from the device tree).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Read the board profiles from this folder (`<board>.toml`) instead of
    /// the copies built in: to use an edited profile without rebuilding.
    #[arg(long, value_name = "DIR", env = "MARQUEE_PROFILE_DIR")]
    pub profile_dir: Option<PathBuf>,
    /// HTTP address, overriding http.listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// SQLite file, overriding store.path.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Once ready, write the HTTP address actually bound (`IP:port`, one
    /// line) to this file: with `--listen 127.0.0.1:0`, how a script or a
    /// test learns the port. Written whole (temp file + rename), so a
    /// reader that sees the file sees the complete address.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

impl Args {
    /// The config layers these flags ask for; shared with `config check`.
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let mut overrides = Vec::new();
        if let Some(listen) = self.listen {
            overrides.push(Override::new(
                "http.listen",
                listen.to_string(),
                "--listen",
            )?);
        }
        if let Some(db) = &self.db {
            overrides.push(Override::new(
                "store.path",
                db.display().to_string(),
                "--db",
            )?);
        }
        Ok(LoadOptions {
            config_file: self.config.clone(),
            board: self.board.clone(),
            profile_dir: self.profile_dir.clone(),
            overrides,
            ..LoadOptions::default()
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, provenance) = Config::load(&args.load_options()?)?;
    let board = provenance.board();
    info!(board = %board.name, how = ?board.how, "configuration loaded");
    raise_open_file_limit();
    info!(memory = %config.memory_plan(), "memory budget");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("marquee-rt")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, args.ready_file))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let listen = config.http.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (http.listen / --listen)"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signals(shutdown.clone()));
    let running = crate::app::start(config, listener, shutdown.clone()).await?;
    if let Some(path) = ready_file {
        if let Err(err) = write_ready_file(&path, running.addr) {
            // Whoever waits for the file would wait forever: stop instead.
            shutdown.cancel();
            running.wait().await?;
            return Err(err);
        }
    }
    running.wait().await
}

fn write_ready_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| {
            format!(
                "cannot write the ready file {} (--ready-file)",
                path.display()
            )
        })
}

/// SIGTERM or SIGINT: shut down in order. A second one: exit now, for an
/// operator who does not want to wait for the drain.
async fn on_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            warn!(error = %err, "cannot install signal handlers; stop with SIGKILL");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    warn!("second signal: exiting without draining (the outbox keeps stored results)");
    std::process::exit(130);
}

/// Raise the soft open-file limit to the hard one, as Go's runtime and
/// nginx do: run by hand or from a shell the soft limit is often 1024, which
/// a few hundred connections and the store's files would reach.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(limit, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
}
