//! The `--config` file and `--set KEY=VALUE` flags through the real loader:
//! merged over the defaults and a built-in board profile, deserialized,
//! validated; a config that loads is then used the way the daemon starts
//! (memory plan, broker address, camera setups, `config check` output).
//!
//! Input: the TOML file text, then optionally a NUL byte and one
//! `--set` assignment per line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use marquee::config::{Config, EnvSource, LoadOptions, Override};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The loader reads a path, as the daemon does: one file per fuzzer
/// process, in memory where the machine has a tmpfs.
fn config_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("marquee-fuzz-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let (file, sets) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let mut overrides = Vec::new();
    for line in String::from_utf8_lossy(sets).lines() {
        if let Ok(set) = Override::parse_assignment(line) {
            assert!(!set.key().is_empty(), "an empty key from `{line}`");
            overrides.push(set);
        }
    }
    let path = config_path();
    std::fs::write(path, file).expect("the fuzz config file is writable");
    let opts = LoadOptions {
        config_file: Some(path.clone()),
        board: Some("x86_64-generic".to_owned()),
        env: EnvSource::Vars(Default::default()),
        overrides,
        profile_dir: None,
        device_tree_model: PathBuf::from("/nonexistent/device-tree-model"),
    };
    let Ok((config, _provenance)) = Config::load(&opts) else {
        return;
    };
    assert!(
        config.validate().is_ok(),
        "a loaded config fails validation"
    );
    let _ = config.memory_plan();
    // `load` validated the URL: the daemon reads the broker from it.
    assert!(
        config.mqtt.broker().is_ok(),
        "mqtt.url {:?}",
        config.mqtt.url
    );
    let _ = marquee::camera::setups_from_config(&config);
    let shown = config.to_toml_string();
    assert!(
        shown.is_ok(),
        "config check cannot show a loaded config: {shown:?}"
    );
});
