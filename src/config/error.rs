//! What can go wrong while loading the configuration. Every message names the
//! layer (file, environment variable or flag) and the key, so the operator
//! knows which line to fix.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source} (check the path given to --config)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The layer is not valid TOML; `message` carries toml's line and column.
    #[error("{origin}: not valid TOML: {message}")]
    Syntax { origin: String, message: String },

    #[error("unknown board `{name}`: choose one of {known} with --board")]
    UnknownBoard { name: String, known: String },

    #[error("cannot list board profiles in {path}: {source}")]
    ProfileDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `MARQUEE__*` variable or `--set` key that cannot name a config key.
    #[error("{origin}: `{key}` is not a config key path: {reason}")]
    BadKey {
        origin: String,
        key: String,
        reason: &'static str,
    },

    /// The environment holds a `MARQUEE__*` variable that is not UTF-8.
    #[error("environment variable {name} is not valid UTF-8")]
    EnvNotUtf8 { name: String },

    /// The merged layers do not fit the schema: an unknown key, a wrong type.
    #[error("{origin}: `{key}`: {message}")]
    Schema {
        origin: String,
        key: String,
        message: String,
    },

    /// The values fit the schema but not together or not in range.
    #[error("invalid configuration:{}", Problems(.0))]
    Invalid(Vec<Problem>),

    #[error("cannot print the configuration as TOML: {0}")]
    Render(#[from] toml::ser::Error),
}

/// One failed validation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, as in `mqtt.topic_prefix` or `camera[0].fps`.
    pub key: String,
    /// Where the value came from, when loaded through layers.
    pub origin: Option<String>,
    /// What is wrong and what to do.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "`{}` (from {origin}): {}", self.key, self.reason),
            None => write!(f, "`{}`: {}", self.key, self.reason),
        }
    }
}

/// Renders a list of problems as one indented line each.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}
