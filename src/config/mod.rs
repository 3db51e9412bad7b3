//! The daemon's configuration: types, defaults, layering and validation.
//!
//! Layers, lowest first; each one only names what it changes:
//!
//! 1. built-in defaults ([`Config::default`]);
//! 2. the board profile `firmware-config/<board>.toml`, the board named by
//!    `--board`, else detected from `/proc/device-tree/model`, else
//!    `x86_64-generic` (see [`board_for_model`]);
//! 3. the `--config` file;
//! 4. `MARQUEE__SECTION__KEY` environment variables (`MARQUEE__MQTT__URL`,
//!    `MARQUEE__DEVICE_ID`), values read as TOML when they parse, else as strings;
//! 5. command-line flags ([`Override`]).
//!
//! The layers are merged as TOML tables and deserialized once, so an unknown
//! or mistyped key anywhere is an error naming the key and the layer it came
//! from: `firmware-config/rpi4.toml: `inference.thread`: unknown field
//! `thread`, expected one of ...`.
//!
//! ```no_run
//! use marquee::config::{Config, LoadOptions, Override};
//! let opts = LoadOptions {
//!     config_file: Some("/etc/marquee/marquee.toml".into()),
//!     overrides: vec![Override::new("http.listen", "0.0.0.0:8080", "--listen")?],
//!     ..LoadOptions::default()
//! };
//! let (config, provenance) = Config::load(&opts)?;
//! println!("board {}: {}", provenance.board().name, config.to_toml_string()?);
//! # Ok::<(), marquee::config::ConfigError>(())
//! ```

mod board;
pub mod camera_source;
mod error;
mod layers;
mod memory;
mod schema;
mod validate;

#[cfg(test)]
mod tests;

pub use board::{
    board_for_model, builtin_names, names_in, BoardChoice, BoardSelection, BUILTIN_PROFILES,
    DEVICE_TREE_MODEL, FALLBACK_BOARD,
};
pub use camera_source::{redact_url, SourceSpec, SYNTHETIC_SCRIPTS};
pub use error::{ConfigError, Problem};
pub use layers::{Origin, Override, Provenance, ENV_PREFIX};
pub use memory::{MemoryPlan, LOGIN_CHECKS};
pub use schema::{
    CameraConfig, CameraDefaults, CameraMode, CameraSettings, Config, DashboardConfig, HttpConfig,
    InferenceConfig, ModelVariant, MqttConfig, StoreConfig, WatchConfig,
};
pub use validate::{check_genre_name, parse_broker_url, Broker};

use layers::Layers;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// What [`Config::load`] reads besides the built-in defaults.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `--config FILE`; when given, it must exist.
    pub config_file: Option<PathBuf>,
    /// `--board NAME`; `None` detects the board.
    pub board: Option<String>,
    /// Where `MARQUEE__*` variables come from.
    pub env: EnvSource,
    /// Command-line flags, applied last, in order.
    pub overrides: Vec<Override>,
    /// Read `<board>.toml` from this folder instead of the built-in profiles.
    pub profile_dir: Option<PathBuf>,
    /// The file naming the board; tests point it elsewhere.
    pub device_tree_model: PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            config_file: None,
            board: None,
            env: EnvSource::Process,
            overrides: Vec::new(),
            profile_dir: None,
            device_tree_model: PathBuf::from(DEVICE_TREE_MODEL),
        }
    }
}

/// The environment layer's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// The process environment.
    Process,
    /// These variables only (tests; embedding).
    Vars(BTreeMap<String, String>),
}

impl Config {
    /// Merge every layer, deserialize, validate. The [`Provenance`] tells
    /// which board was used and where each key's value came from.
    pub fn load(opts: &LoadOptions) -> Result<(Config, Provenance), ConfigError> {
        let mut layers = Layers::default();
        layers.merge(defaults_table()?, &Origin::Default);

        let board = board::choose(opts.board.as_deref(), &opts.device_tree_model);
        let profile = board::profile(&board.name, opts.profile_dir.as_deref())?;
        layers.merge(
            parse_table(&profile.text, &profile.origin)?,
            &Origin::Board(profile.origin),
        );

        if let Some(path) = &opts.config_file {
            layers.merge(read_table(path)?, &Origin::File(path.clone()));
        }

        let env = match &opts.env {
            EnvSource::Process => layers::process_env()?,
            EnvSource::Vars(vars) => vars.clone().into_iter().collect(),
        };
        for ov in layers::env_overrides(env)? {
            layers.apply(ov);
        }
        for ov in &opts.overrides {
            layers.apply(ov.clone());
        }

        let config = deserialize(&mut layers)?;
        let provenance = Provenance {
            board,
            keys: layers.keys,
        };
        let problems: Vec<Problem> = validate::problems(&config)
            .into_iter()
            .map(|problem| Problem {
                origin: provenance.origin_of(&problem.key).map(Origin::to_string),
                ..problem
            })
            .collect();
        if problems.is_empty() {
            Ok((config, provenance))
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Check the rules the types cannot express, for a config built in code
    /// (`load` already does this).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The effective configuration as TOML, with every secret redacted (the
    /// MQTT password, passwords in URLs), for `marquee config check`. Unset
    /// optional keys are left out.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        if shown.mqtt.password.is_some() {
            shown.mqtt.password = Some("<redacted>".to_owned());
        }
        shown.mqtt.url = redact_url(&shown.mqtt.url);
        if shown.http.metrics_token.is_some() {
            shown.http.metrics_token = Some("<redacted>".to_owned());
        }
        for camera in &mut shown.cameras {
            camera.source = redact_url(&camera.source);
        }
        Ok(toml::to_string(&shown)?)
    }
}

/// The defaults as a table, so they merge like any other layer and every key
/// has an origin.
fn defaults_table() -> Result<Table, ConfigError> {
    match Value::try_from(Config::default())? {
        Value::Table(table) => Ok(table),
        // A struct always serializes to a table.
        _ => Ok(Table::new()),
    }
}

fn read_table(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_table(&text, &path.display().to_string())
}

fn parse_table(text: &str, origin: &str) -> Result<Table, ConfigError> {
    toml::from_str(text).map_err(|err| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: err.to_string().trim_end().to_owned(),
    })
}

/// Deserialize the merged tables, naming the failing key and its layer.
fn deserialize(layers: &mut Layers) -> Result<Config, ConfigError> {
    loop {
        let value = Value::Table(layers.root.clone());
        let err = match serde_path_to_error::deserialize::<_, Config>(value) {
            Ok(config) => return Ok(config),
            Err(err) => err,
        };
        let key = err.path().to_string();
        // `MARQUEE__MQTT__PASSWORD=1234` reads as an integer; a string key
        // wants it back as text. Each key is retried once at most.
        if layers.retry_as_string(&key) {
            continue;
        }
        let origin = layers::origin_in(&layers.keys, &key)
            .map_or_else(|| "the merged configuration".to_owned(), Origin::to_string);
        return Err(ConfigError::Schema {
            origin,
            key,
            message: err.inner().message().trim_end().to_owned(),
        });
    }
}
