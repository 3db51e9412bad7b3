//! `marquee classify`: genres for poster files and folders.

use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use super::ModelArgs;
use crate::model::{manifest::sha256_hex, Classifier, GenreScore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Worker threads (default 1: one poster at a time, the least memory).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Image files, or folders whose files are all classified (sorted by name).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// One line of `--format jsonl`; the same fields the daemon publishes.
#[derive(Debug, Serialize)]
pub struct Record {
    pub id: String,
    pub file: String,
    pub genres: Vec<GenreScore>,
    pub tags: Vec<String>,
    pub top3: Vec<GenreScore>,
    pub model: String,
    pub elapsed_ms: f64,
}

#[derive(Debug, Serialize)]
struct ErrorRecord<'a> {
    file: &'a str,
    error: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args.model.dir();
    let classifier = Classifier::load_with(
        &dir,
        args.model.variant.as_deref(),
        &args.model.runtime(args.threads.max(1)),
    )
    .with_context(|| format!("loading the model from {}", dir.display()))?;
    if let Some(why) = classifier.fallback() {
        eprintln!("{why}");
    }
    let files = expand(&args.paths)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.format == Format::Table {
        writeln!(out, "{:<40} {:<44} {:>8}  tags", "file", "top-3", "ms")?;
    }
    let mut failures = 0usize;
    for_each_ordered(&files, &classifier, args.threads, |file, outcome| {
        let name = file.display().to_string();
        match outcome {
            Ok(record) => match args.format {
                Format::Jsonl => writeln!(out, "{}", serde_json::to_string(&record)?)?,
                Format::Table => {
                    let top: Vec<String> = record
                        .top3
                        .iter()
                        .map(|g| format!("{} {:.2}", g.label, g.score))
                        .collect();
                    writeln!(
                        out,
                        "{:<40} {:<44} {:>8.1}  {}",
                        shorten(&name, 40),
                        top.join(", "),
                        record.elapsed_ms,
                        record.tags.join("|")
                    )?;
                }
            },
            Err(error) => {
                failures += 1;
                eprintln!("{name}: {error}");
                if args.format == Format::Jsonl {
                    let line = ErrorRecord { file: &name, error };
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                }
            }
        }
        Ok(())
    })?;
    if failures > 0 {
        eprintln!(
            "{failures} of {} files could not be classified",
            files.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn classify_file(classifier: &Classifier, path: &Path) -> Result<Record, String> {
    let start = Instant::now();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let prediction = classifier.classify(&bytes).map_err(|e| e.to_string())?;
    Ok(Record {
        id: sha256_hex(&bytes),
        file: path.display().to_string(),
        genres: prediction.genres,
        tags: prediction.tags,
        top3: prediction.top3,
        model: classifier.name().to_string(),
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Classify on `threads` workers but hand results over in input order, with
/// only a few posters in memory at once.
fn for_each_ordered(
    files: &[PathBuf],
    classifier: &Classifier,
    threads: usize,
    mut sink: impl FnMut(&Path, Result<Record, String>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<Record, String>)>(threads * 2);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                if tx.send((i, classify_file(classifier, file))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        for (i, outcome) in rx {
            pending.insert(i, outcome);
            while let Some(outcome) = pending.remove(&want) {
                sink(&files[want], outcome)?;
                want += 1;
            }
        }
        Ok(())
    })
}

/// Files as given; folders expanded to their regular files, sorted.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn shorten(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(count - (max - 1)).collect();
        format!("…{tail}")
    }
}
