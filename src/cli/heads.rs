//! `marquee retrain` and `marquee head list|promote|export|import`: the
//! learning loop on a store, without the daemon (a running daemon sees the
//! new candidate or active head at its next start; promote through its API
//! to switch without one).

use crate::learning::{Learning, Options};
use crate::model::manifest::Manifest;
use crate::model::Classifier;
use crate::store::{HeadRow, Store, StoreHandle};
use anyhow::Context as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The daemon's store (its `store.path`).
    #[arg(long, value_name = "FILE", default_value = "marquee.db")]
    pub db: PathBuf,
    #[command(flatten)]
    pub model: super::ModelArgs,
}

#[derive(Debug, clap::Args)]
pub struct RetrainArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Threads to fit on (0: every core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, clap::Subcommand)]
pub enum HeadCommand {
    /// Every head in the store: id, state, origin, corrections, micro-F1.
    List(StoreArgs),
    /// Make a head active (a candidate, or an older head to roll back).
    Promote {
        id: i64,
        /// Promote a candidate that scores worse than the active head.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a head file (labels, feature layout, backbone, sha256).
    Export {
        id: i64,
        /// Where to write it (`-`: standard output).
        #[arg(long, value_name = "FILE", default_value = "-")]
        out: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Store a head file as the candidate (refused if it does not fit).
    Import {
        /// The head file (`-`: standard input).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn retrain(args: &RetrainArgs) -> anyhow::Result<ExitCode> {
    with_learning(&args.store, args.threads, |learning| async move {
        let row = learning.retrain_now("cli").await?;
        print_head(&row);
        eprintln!(
            "head-{} is the candidate: `marquee head promote {}` makes it active",
            row.id, row.id
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run(command: HeadCommand) -> anyhow::Result<ExitCode> {
    match command {
        HeadCommand::List(store) => with_learning(&store, 0, |learning| async move {
            for row in learning.list().await? {
                print_head(&row);
            }
            Ok(ExitCode::SUCCESS)
        }),
        HeadCommand::Promote { id, force, store } => {
            with_learning(&store, 0, |learning| async move {
                let row = learning.promote(id, force).await?;
                print_head(&row);
                Ok(ExitCode::SUCCESS)
            })
        }
        HeadCommand::Export { id, out, store } => with_learning(&store, 0, |learning| async move {
            let bytes = learning.export(id).await?.to_bytes();
            if out.as_os_str() == "-" {
                use std::io::Write as _;
                std::io::stdout().write_all(&bytes)?;
            } else {
                std::fs::write(&out, bytes)
                    .with_context(|| format!("writing {}", out.display()))?;
                eprintln!("wrote {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }),
        HeadCommand::Import { file, store } => {
            let bytes = read_head_file(&file)?;
            with_learning(&store, 0, |learning| async move {
                let row = learning.import(&bytes).await?;
                print_head(&row);
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

fn print_head(row: &HeadRow) {
    let f1 = row
        .metrics
        .get("model")
        .and_then(|m| m.get("micro_f1"))
        .and_then(serde_json::Value::as_f64)
        .map_or("-".to_string(), |f| format!("{f:.3}"));
    println!(
        "head-{:<4} {:<9} {:<8} corrections {:>5}  micro-F1 {f1}",
        row.id,
        serde_json::to_value(row.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        row.origin,
        row.corrections
    );
}

fn read_head_file(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let limit = crate::learning::headfile::MAX_HEAD_FILE_BYTES as u64;
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().take(limit + 1).read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("opening {}", file.display()))?
            .take(limit + 1)
            .read_to_end(&mut bytes)?;
    }
    anyhow::ensure!(
        bytes.len() as u64 <= limit,
        "{} is over {limit} bytes: not a head file",
        file.display()
    );
    Ok(bytes)
}

/// Open the store and the model, restore the heads, run `f`, close cleanly.
fn with_learning<F, Fut>(args: &StoreArgs, threads: usize, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Learning) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let dir = args.model.dir();
    if !args.db.is_file() {
        anyhow::bail!(
            "{} is not a store: name the daemon's store.path with --db",
            args.db.display()
        );
    }
    let manifest = Manifest::load(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let classifier =
        Classifier::load_with(&dir, args.model.variant.as_deref(), &args.model.runtime(1))
            .with_context(|| format!("loading the model from {}", dir.display()))?;
    let store = Store::open(&args.db)
        .with_context(|| format!("opening the store {}", args.db.display()))?;
    let (handle, writer) = StoreHandle::spawn(store, 4)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let outcome = runtime.block_on(async {
        let learning = Learning::start(
            &classifier,
            handle.clone(),
            &dir,
            &manifest,
            Options {
                publish: None,
                device_id: hostname(),
                threads,
                genres: crate::model::live::GenreList::new(Vec::new()),
                extra_genres: Vec::new(),
            },
        )
        .await?;
        f(learning).await
    });
    drop(runtime);
    drop(handle);
    writer.join()?;
    outcome
}

fn hostname() -> String {
    crate::web::net::hostname().unwrap_or_else(|| "marquee".into())
}
