//! Merging the layers as TOML tables, and remembering where each value came
//! from so a later error can name the file, variable or flag to fix.

use super::board::BoardChoice;
use super::error::ConfigError;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::PathBuf;
use toml::{Table, Value};

/// Prefix of the environment variables that set config keys;
/// `__` separates the levels: `MARQUEE__MQTT__URL` sets `mqtt.url`.
pub const ENV_PREFIX: &str = "MARQUEE__";

/// The layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults ([`Config::default`](super::Config::default)).
    Default,
    /// A board profile, named as `firmware-config/<board>.toml` or its path.
    Board(String),
    /// The `--config` file.
    File(PathBuf),
    /// A `MARQUEE__*` environment variable.
    Env(String),
    /// A command-line flag, as the CLI names it (`--listen`, `--set mqtt.url`).
    Cli(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("built-in defaults"),
            Self::Board(name) => f.write_str(name),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Cli(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// Where the effective configuration came from: the board and, for every
/// key, the layer that set it last.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub(crate) board: BoardChoice,
    pub(crate) keys: BTreeMap<String, Origin>,
}

impl Provenance {
    /// The board profile that was applied and how it was chosen.
    pub fn board(&self) -> &BoardChoice {
        &self.board
    }

    /// The layer that set `key` (`mqtt.url`, `camera[1].fps`). Arrays are set
    /// as a whole, so an element's key answers with the array's origin.
    pub fn origin_of(&self, key: &str) -> Option<&Origin> {
        origin_in(&self.keys, key)
    }

    /// Every key set by some layer, in key order, with its origin.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.keys.iter().map(|(key, origin)| (key.as_str(), origin))
    }
}

/// The origin recorded for `key`; for a table, that of a key inside it (an
/// unknown `[mqtt.tls]` is reported at `mqtt.tls`, its leaves are recorded
/// below); else that of the nearest array or table holding it.
pub(crate) fn origin_in<'a>(keys: &'a BTreeMap<String, Origin>, key: &str) -> Option<&'a Origin> {
    if let Some(origin) = keys.get(key) {
        return Some(origin);
    }
    let inside = keys
        .range::<str, _>((Bound::Excluded(key), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(key))
        .find(|(k, _)| k[key.len()..].starts_with(['.', '[']));
    if let Some((_, origin)) = inside {
        return Some(origin);
    }
    let mut key = key;
    while let Some(cut) = key.rfind(['.', '[']) {
        key = &key[..cut];
        if let Some(origin) = keys.get(key) {
            return Some(origin);
        }
    }
    None
}

/// One key set from outside the files: an environment variable or a flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    path: Vec<String>,
    value: Value,
    origin: Origin,
    /// The text the value was inferred from, kept so a string key given
    /// `1234` (parsed as an integer) can be retried as the string "1234".
    raw: Option<String>,
}

impl Override {
    /// A typed value for a dotted key, from a CLI flag: e.g.
    /// `Override::new("http.listen", "0.0.0.0:8080", "--listen")`.
    pub fn new(
        key: &str,
        value: impl Into<Value>,
        flag: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let origin = Origin::Cli(flag.into());
        Ok(Self {
            path: key_path(key, key.split('.'), &origin)?,
            value: value.into(),
            origin,
            raw: None,
        })
    }

    /// A `KEY=VALUE` assignment from a generic flag such as `--set`: the value
    /// is read as a TOML value when it parses (`4`, `true`, `"x"`), else taken
    /// as a string (`mqtt://broker:1883`).
    pub fn parse_assignment(assignment: &str) -> Result<Self, ConfigError> {
        let origin = Origin::Cli(format!("--set {assignment}"));
        let Some((key, raw)) = assignment.split_once('=') else {
            return Err(ConfigError::BadKey {
                origin: origin.to_string(),
                key: assignment.to_owned(),
                reason: "expected KEY=VALUE, e.g. mqtt.url=mqtt://broker:1883",
            });
        };
        let key = key.trim();
        Ok(Self::inferred(
            key_path(key, key.split('.'), &origin)?,
            raw,
            origin,
        ))
    }

    /// The dotted key this override sets.
    pub fn key(&self) -> String {
        self.path.join(".")
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    fn inferred(path: Vec<String>, raw: &str, origin: Origin) -> Self {
        let value = infer_value(raw);
        let raw = (!value.is_str()).then(|| raw.to_owned());
        Self {
            path,
            value,
            origin,
            raw,
        }
    }

    /// The override as a one-key nested table, ready to merge.
    fn into_table(self) -> Table {
        let mut value = self.value;
        for segment in self.path.iter().rev() {
            let mut table = Table::new();
            table.insert(segment.clone(), value);
            value = Value::Table(table);
        }
        match value {
            Value::Table(table) => table,
            // key_path never returns an empty path.
            _ => Table::new(),
        }
    }
}

/// Read a value the way TOML would (`4` is an integer, `true` a boolean,
/// `"4"` a string), or as a plain string when it is not a TOML value.
fn infer_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<Table>(&doc) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

/// Check the levels of a key, each a plausible key name.
fn key_path<'a>(
    key: &str,
    segments: impl Iterator<Item = &'a str>,
    origin: &Origin,
) -> Result<Vec<String>, ConfigError> {
    let bad = |reason| ConfigError::BadKey {
        origin: origin.to_string(),
        key: key.to_owned(),
        reason,
    };
    let segments: Vec<String> = segments.map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(bad("a level is empty"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if !segments.iter().all(|s| s.chars().all(allowed)) {
        return Err(bad("use lowercase letters, digits and `_` only"));
    }
    Ok(segments)
}

/// Overrides from `MARQUEE__*` variables; other variables are ignored.
/// The levels are lowercased: `MARQUEE__INFERENCE__QUEUE_SIZE=8` sets
/// `inference.queue_size` to the integer 8.
pub(crate) fn env_overrides<I>(vars: I) -> Result<Vec<Override>, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut overrides = Vec::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let origin = Origin::Env(name.clone());
        let lower = rest.to_ascii_lowercase();
        let path = key_path(&lower, lower.split("__"), &origin)?;
        overrides.push(Override::inferred(path, &raw, origin));
    }
    // Deterministic order, whatever order the environment lists them in.
    overrides.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(overrides)
}

/// The process environment's `MARQUEE__*` variables.
pub(crate) fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::EnvNotUtf8 {
            name: name.to_owned(),
        })?;
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

/// The tables merged so far, and the origin of every leaf key.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub root: Table,
    pub keys: BTreeMap<String, Origin>,
    /// Overrides whose text was read as a non-string, by dotted key.
    retry_as_string: BTreeMap<String, (Origin, String)>,
}

impl Layers {
    /// Merge a layer over the current tables: tables merge key by key,
    /// anything else (arrays included) replaces what was there.
    pub fn merge(&mut self, layer: Table, origin: &Origin) {
        merge_into(&mut self.root, layer, "", origin, &mut self.keys);
    }

    pub fn apply(&mut self, ov: Override) {
        let key = ov.key();
        if let Some(raw) = ov.raw.clone() {
            self.retry_as_string.insert(key, (ov.origin.clone(), raw));
        }
        let origin = ov.origin.clone();
        self.merge(ov.into_table(), &origin);
    }

    /// If `key` failed to deserialize and was set from inferred text that
    /// is still in place, put the text back as a string and say so.
    pub fn retry_as_string(&mut self, key: &str) -> bool {
        let Some((origin, raw)) = self.retry_as_string.remove(key) else {
            return false;
        };
        if self.keys.get(key) != Some(&origin) {
            return false;
        }
        let mut table = &mut self.root;
        let mut segments = key.split('.').peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                table.insert(segment.to_owned(), Value::String(raw));
                return true;
            }
            match table.get_mut(segment) {
                Some(Value::Table(inner)) => table = inner,
                _ => return false,
            }
        }
        false
    }
}

fn merge_into(
    dst: &mut Table,
    src: Table,
    prefix: &str,
    origin: &Origin,
    keys: &mut BTreeMap<String, Origin>,
) {
    for (name, value) in src {
        let path = join(prefix, &name);
        match (dst.get_mut(&name), value) {
            (Some(Value::Table(lower)), Value::Table(upper)) => {
                merge_into(lower, upper, &path, origin, keys);
            }
            (_, value) => {
                forget(keys, &path);
                record_leaves(&value, &path, origin, keys);
                dst.insert(name, value);
            }
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Drop the origins of `path` and everything under it (it is being replaced).
fn forget(keys: &mut BTreeMap<String, Origin>, path: &str) {
    keys.retain(|key, _| {
        !(key == path
            || key
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with(['.', '['])))
    });
}

fn record_leaves(value: &Value, path: &str, origin: &Origin, keys: &mut BTreeMap<String, Origin>) {
    match value {
        Value::Table(table) if !table.is_empty() => {
            for (name, inner) in table {
                record_leaves(inner, &join(path, name), origin, keys);
            }
        }
        _ => {
            keys.insert(path.to_owned(), origin.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_values_are_toml_when_they_parse_else_strings() {
        let overrides = env_overrides(vars(&[
            ("MARQUEE__INFERENCE__THREADS", "4"),
            ("MARQUEE__MQTT__URL", "mqtts://broker:8883"),
            ("MARQUEE__MQTT__DISCOVERY", "false"),
            ("MARQUEE__DEVICE_ID", "\"0042\""),
            ("MARQUEE_CACHE_DIR", "/tmp/ignored"),
            ("PATH", "/usr/bin"),
        ]))
        .unwrap();
        let got: Vec<(String, Value)> = overrides.into_iter().map(|o| (o.key(), o.value)).collect();
        assert_eq!(
            got,
            vec![
                ("device_id".to_owned(), Value::from("0042")),
                ("inference.threads".to_owned(), Value::from(4)),
                ("mqtt.discovery".to_owned(), Value::from(false)),
                ("mqtt.url".to_owned(), Value::from("mqtts://broker:8883")),
            ]
        );
    }

    #[test]
    fn malformed_env_names_are_errors() {
        for name in [
            "MARQUEE__",
            "MARQUEE__MQTT____URL",
            "MARQUEE__MQTT__URL__",
            "MARQUEE__MQTT-URL",
        ] {
            let err = env_overrides(vars(&[(name, "x")])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn origin_of_an_array_element_is_the_array() {
        let mut layers = Layers::default();
        let table: Table = toml::from_str("[[camera]]\nname = 'a'\n[mqtt]\nurl = 'x'").unwrap();
        layers.merge(table, &Origin::File("site.toml".into()));
        let prov = Provenance {
            board: super::super::board::BoardChoice {
                name: "rpi4".into(),
                how: super::super::board::BoardSelection::Named,
            },
            keys: layers.keys,
        };
        let file = Some(&Origin::File("site.toml".into()));
        assert_eq!(prov.origin_of("camera[0].name"), file);
        assert_eq!(prov.origin_of("mqtt.url"), file);
        assert_eq!(prov.origin_of("mqtt.username"), None);
    }

    #[test]
    fn a_replaced_table_forgets_the_origins_under_it() {
        let mut layers = Layers::default();
        layers.merge(
            toml::from_str("[mqtt]\nurl = 'x'").unwrap(),
            &Origin::Default,
        );
        layers.merge(
            toml::from_str("mqtt = 3").unwrap(),
            &Origin::Env("E".into()),
        );
        assert_eq!(layers.keys.len(), 1);
        assert_eq!(layers.keys.get("mqtt"), Some(&Origin::Env("E".into())));
    }
}
