//! `marquee feedback import FILE.csv`: corrections in bulk, straight into
//! the store (the daemon may be running: SQLite's WAL takes both writers).

use crate::feedback::{self, Via};
use crate::store::{Store, StoreHandle};
use anyhow::Context as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum FeedbackCommand {
    /// Store corrections from a CSV file: rows `id,Genre|Genre[,by]`, or
    /// `id,kept` to confirm a poster's tags. Posters are matched by id.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file (`-` for standard input).
    pub file: PathBuf,
    /// The daemon's store (its `store.path`).
    #[arg(long, value_name = "FILE", default_value = "marquee.db")]
    pub db: PathBuf,
    #[command(flatten)]
    pub model: super::ModelArgs,
}

pub fn run(command: FeedbackCommand) -> anyhow::Result<ExitCode> {
    match command {
        FeedbackCommand::Import(args) => import(&args),
    }
}

fn import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let text = read_limited(&args.file)?;
    let dir = args.model.dir();
    let labels = crate::model::manifest::Manifest::load(&dir)
        .with_context(|| format!("reading the model's genres from {}", dir.display()))?
        .labels;
    if !args.db.is_file() {
        anyhow::bail!(
            "{} is not a store: name the daemon's store.path with --db",
            args.db.display()
        );
    }
    let store = Store::open(&args.db)
        .with_context(|| format!("opening the store {}", args.db.display()))?;
    let (handle, writer) = StoreHandle::spawn(store, 4)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the import's runtime")?;
    let report = runtime.block_on(feedback::import(&handle, &labels, &text, Via::Import));
    drop(handle);
    writer.join()?;
    let report = report?;
    for refused in &report.refused {
        eprintln!("line {}: {}", refused.line, refused.reason);
    }
    println!(
        "{} corrections imported ({} confirming the tags), {} rows refused",
        report.imported,
        report.kept,
        report.refused.len()
    );
    Ok(if report.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The file's text, refusing one over the import limit before reading it all.
fn read_limited(file: &PathBuf) -> anyhow::Result<String> {
    let limit = feedback::MAX_IMPORT_BYTES as u64;
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(limit + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("opening {}", file.display()))?
            .take(limit + 1)
            .read_to_string(&mut text)
    };
    read.with_context(|| format!("reading {} (UTF-8 CSV expected)", file.display()))?;
    if text.len() as u64 > limit {
        anyhow::bail!(
            "{} is over {limit} bytes: split it into smaller files",
            file.display()
        );
    }
    Ok(text)
}
