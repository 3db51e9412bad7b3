//! Command-line interface: one module per sub-command.

mod bench;
mod bench_agreement;
mod bench_camera;
mod classify;
mod config_check;
mod dashboard;
mod data;
mod eval;
mod feedback;
mod heads;
pub mod serve;
mod train;

use crate::model::backbone::{Provider, RuntimeChoice, RuntimeOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "marquee",
    version,
    about = "Tags movie posters with their genres"
)]
pub struct Cli {
    /// More logging (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Without a sub-command, `marquee` runs the daemon (`serve`) with its defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP and MQTT inputs, classification, store, MQTT events.
    Serve(serve::Args),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Classify poster files or folders and print their genres.
    Classify(classify::Args),
    /// Measure the model against a labelled poster set.
    Eval(eval::Args),
    /// Train the genre head from labelled posters (deterministic).
    Train(train::Args),
    /// Time each stage of the model and its throughput, f32 against int8.
    Bench(bench::Args),
    /// Dashboard credentials: a password hash or an API token for the config.
    Dashboard {
        #[command(subcommand)]
        action: dashboard::DashboardCommand,
    },
    /// Time the camera's change detection per frame (and JPEG decoding).
    BenchCamera(bench_camera::Args),
    /// Corrections in bulk.
    Feedback {
        #[command(subcommand)]
        action: feedback::FeedbackCommand,
    },
    /// Fit a candidate genre head on the store's corrections (offline).
    Retrain(heads::RetrainArgs),
    /// Genre heads in a store: list, promote or roll back, export, import.
    Head {
        #[command(subcommand)]
        action: heads::HeadCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration layers and print the effective config.
    Check(config_check::Args),
}

/// Where the model lives and which variant to run; shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model folder with manifest.json (default: the shipped `models/`).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Backbone variant from the manifest (default: the one the manifest
    /// gives the runtime: int8 on tract, int8-full on onnxruntime).
    #[arg(long)]
    pub variant: Option<String>,
    /// Backbone runtime (default tract; onnxruntime needs the `onnxruntime`
    /// build feature and its library).
    #[arg(long, value_enum)]
    pub backend: Option<RuntimeChoice>,
    /// libonnxruntime.so to load (default: ORT_DYLIB_PATH, else the library
    /// search path).
    #[arg(long, value_name = "FILE")]
    pub onnxruntime_library: Option<PathBuf>,
    /// onnxruntime execution providers, in order of preference.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu")]
    pub providers: Vec<Provider>,
}

impl ModelArgs {
    pub fn dir(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(crate::model::default_model_dir)
    }

    /// The runtime to run the backbone on, with `sessions` onnxruntime
    /// sessions (one per thread that classifies).
    pub fn runtime(&self, sessions: usize) -> RuntimeOptions {
        RuntimeOptions {
            choice: self.backend.unwrap_or_default(),
            library: self.onnxruntime_library.clone(),
            providers: self.providers.clone(),
            sessions: sessions.max(1),
            cache_dir: None,
        }
    }
}

/// The labelled data a command reads.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Poster list, `id,Genre|Genre` (as ../shared/data/posters.csv).
    #[arg(long, value_name = "CSV", default_value = "../shared/data/posters.csv")]
    pub data: PathBuf,
    /// Folder of `<id>.jpg` images.
    #[arg(long, value_name = "DIR", default_value = "../shared/data/posters")]
    pub images: PathBuf,
    /// Feature cache folder (default: $MARQUEE_CACHE_DIR or ~/.cache/marquee/features).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Threads for feature extraction (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl DataArgs {
    pub fn cache_dir(&self) -> PathBuf {
        self.cache
            .clone()
            .unwrap_or_else(crate::offline::feature_cache::default_cache_dir)
    }
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Set up logging (see [`crate::logging`]).
pub fn init_tracing(verbose: u8) {
    crate::logging::init(verbose);
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => serve::run(serve::Args::default()),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Config {
            action: ConfigCommand::Check(args),
        }) => config_check::run(args),
        Some(Command::Classify(args)) => classify::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Dashboard { action }) => dashboard::run(action),
        Some(Command::BenchCamera(args)) => bench_camera::run(&args),
        Some(Command::Feedback { action }) => feedback::run(action),
        Some(Command::Retrain(args)) => heads::retrain(&args),
        Some(Command::Head { action }) => heads::run(action),
    }
}
