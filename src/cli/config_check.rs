//! `marquee config check`: validate the layers and print the effective config.

use crate::config::Config;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Config file, layered over the board profile.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Board profile from firmware-config/ (default: detected from the device tree).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Read the board profiles from this folder instead of the built-in copies.
    #[arg(long, value_name = "DIR", env = "MARQUEE_PROFILE_DIR")]
    pub profile_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = super::serve::Args {
        config: args.config,
        board: args.board,
        profile_dir: args.profile_dir,
        ..super::serve::Args::default()
    }
    .load_options()?;
    // An invalid config is the answer, not a crash: print it and exit 1.
    let (config, provenance) = match Config::load(&opts) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let board = provenance.board();
    let how = match &board.how {
        crate::config::BoardSelection::Named => "named with --board".to_owned(),
        crate::config::BoardSelection::Detected { model } => format!("detected from `{model}`"),
        crate::config::BoardSelection::Fallback { model: Some(model) } => {
            format!("fallback: `{model}` is not a known board")
        }
        crate::config::BoardSelection::Fallback { model: None } => {
            "fallback: no device-tree model".to_owned()
        }
    };
    let text = config.to_toml_string()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "# board: {} ({how})", board.name)?;
    writeln!(out, "# configuration is valid")?;
    write!(out, "{text}")?;
    Ok(ExitCode::SUCCESS)
}
