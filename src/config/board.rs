//! Board profiles: which `firmware-config/<board>.toml` applies, and its text.
//!
//! The profiles are compiled into the binary so an installed daemon needs no
//! data directory to find them; `LoadOptions::profile_dir` reads them from a
//! folder instead (to try an edited profile without rebuilding).

use super::error::ConfigError;
use std::path::{Path, PathBuf};

/// The board used when none is named and none is detected.
pub const FALLBACK_BOARD: &str = "x86_64-generic";

/// Where the kernel names the board on device-tree systems (ARM boards).
pub const DEVICE_TREE_MODEL: &str = "/proc/device-tree/model";

/// The shipped profiles: board name and file contents.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    (
        "jetson-orin-nano",
        include_str!("../../firmware-config/jetson-orin-nano.toml"),
    ),
    (
        "jetson-nano",
        include_str!("../../firmware-config/jetson-nano.toml"),
    ),
    ("rpi5", include_str!("../../firmware-config/rpi5.toml")),
    ("rpi4", include_str!("../../firmware-config/rpi4.toml")),
    (
        "x86_64-generic",
        include_str!("../../firmware-config/x86_64-generic.toml"),
    ),
];

/// Which board profile applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardChoice {
    pub name: String,
    pub how: BoardSelection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoardSelection {
    /// Named with `--board`.
    Named,
    /// Recognised from the device-tree model string.
    Detected { model: String },
    /// Nothing named or recognised; `model` is what the device tree said, if anything.
    Fallback { model: Option<String> },
}

/// A profile's text and the name used for it in messages.
pub(crate) struct Profile {
    pub origin: String,
    pub text: String,
}

/// Map a device-tree model string to a board profile name.
///
/// The strings are what the vendors' device trees put in
/// `/proc/device-tree/model`, e.g. `NVIDIA Jetson Orin Nano Developer Kit`,
/// `Raspberry Pi 4 Model B Rev 1.4`, `Raspberry Pi Compute Module 4 Rev 1.0`.
/// A Pi 400/500 or a Compute Module shares its SoC with the board it is
/// mapped to, so it gets the same profile.
pub fn board_for_model(model: &str) -> Option<&'static str> {
    // The kernel NUL-terminates the property.
    let model = model.trim_end_matches('\0').trim();
    if model.contains("Jetson Orin Nano") {
        Some("jetson-orin-nano")
    } else if model.contains("Jetson Nano") {
        Some("jetson-nano")
    } else if model.starts_with("Raspberry Pi 5") // also the Pi 500
        || model.starts_with("Raspberry Pi Compute Module 5")
    {
        Some("rpi5")
    } else if model.starts_with("Raspberry Pi 4") // also the Pi 400
        || model.starts_with("Raspberry Pi Compute Module 4")
    {
        Some("rpi4")
    } else {
        None
    }
}

/// Decide the board: the name given, else the device tree, else the fallback.
pub(crate) fn choose(named: Option<&str>, device_tree_model: &Path) -> BoardChoice {
    if let Some(name) = named {
        return BoardChoice {
            name: name.to_owned(),
            how: BoardSelection::Named,
        };
    }
    // A missing file is the normal case off ARM (x86 has no device tree).
    let model = std::fs::read_to_string(device_tree_model)
        .ok()
        .map(|m| m.trim_end_matches('\0').trim().to_owned())
        .filter(|m| !m.is_empty());
    match model.as_deref().and_then(board_for_model) {
        Some(name) => BoardChoice {
            name: name.to_owned(),
            how: BoardSelection::Detected {
                model: model.unwrap_or_default(),
            },
        },
        None => BoardChoice {
            name: FALLBACK_BOARD.to_owned(),
            how: BoardSelection::Fallback { model },
        },
    }
}

/// The profile text for `board`, from `dir` or from the built-in set.
pub(crate) fn profile(board: &str, dir: Option<&Path>) -> Result<Profile, ConfigError> {
    // The name becomes a file name: refuse anything that could leave `dir`.
    let well_formed = !board.is_empty()
        && board
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let unknown = |known: Vec<String>| ConfigError::UnknownBoard {
        name: board.to_owned(),
        known: known.join(", "),
    };
    match dir {
        None => BUILTIN_PROFILES
            .iter()
            .find(|(name, _)| well_formed && *name == board)
            .map(|(name, text)| Profile {
                origin: format!("firmware-config/{name}.toml"),
                text: (*text).to_owned(),
            })
            .ok_or_else(|| unknown(builtin_names())),
        Some(dir) => {
            let path = dir.join(format!("{board}.toml"));
            if !well_formed || !path.is_file() {
                let mut known = names_in(dir)?;
                // Say where they were looked for: a --profile-dir missing the
                // board is the likely mistake.
                known.push(format!("(the profiles in {})", dir.display()));
                return Err(unknown(known));
            }
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            Ok(Profile {
                origin: path.display().to_string(),
                text,
            })
        }
    }
}

/// Names of the built-in profiles.
pub fn builtin_names() -> Vec<String> {
    BUILTIN_PROFILES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// Board names in a profile folder: its `*.toml` files, sorted.
pub fn names_in(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let err = |source| ConfigError::ProfileDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path: PathBuf = entry.map_err(err)?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tree_models_map_to_boards() {
        let cases = [
            (
                "NVIDIA Jetson Orin Nano Developer Kit\0",
                Some("jetson-orin-nano"),
            ),
            (
                "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
                Some("jetson-orin-nano"),
            ),
            ("NVIDIA Jetson Nano Developer Kit\0", Some("jetson-nano")),
            ("NVIDIA Jetson Nano 2GB Developer Kit", Some("jetson-nano")),
            ("Raspberry Pi 5 Model B Rev 1.0\0", Some("rpi5")),
            ("Raspberry Pi Compute Module 5 Rev 1.0", Some("rpi5")),
            ("Raspberry Pi 500 Rev 1.0", Some("rpi5")),
            ("Raspberry Pi 4 Model B Rev 1.4\0", Some("rpi4")),
            ("Raspberry Pi 400 Rev 1.0", Some("rpi4")),
            ("Raspberry Pi Compute Module 4 Rev 1.0", Some("rpi4")),
            ("Raspberry Pi 3 Model B Plus Rev 1.3", None),
            ("NVIDIA Jetson AGX Orin Developer Kit", None),
            ("", None),
        ];
        for (model, expected) in cases {
            assert_eq!(board_for_model(model), expected, "{model:?}");
        }
    }

    #[test]
    fn choose_prefers_the_name_then_the_device_tree_then_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::write(&model, "Raspberry Pi 4 Model B Rev 1.4\0").unwrap();

        let named = choose(Some("rpi5"), &model);
        assert_eq!(
            (named.name.as_str(), named.how),
            ("rpi5", BoardSelection::Named)
        );

        let detected = choose(None, &model);
        assert_eq!(detected.name, "rpi4");
        assert_eq!(
            detected.how,
            BoardSelection::Detected {
                model: "Raspberry Pi 4 Model B Rev 1.4".into()
            }
        );

        let missing = choose(None, &dir.path().join("absent"));
        assert_eq!(missing.name, FALLBACK_BOARD);
        assert_eq!(missing.how, BoardSelection::Fallback { model: None });
    }

    #[test]
    fn unknown_or_path_like_board_names_are_refused() {
        for name in ["rpi3", "../rpi4", "RPI4", ""] {
            let err = profile(name, None).err().unwrap();
            assert!(
                err.to_string().contains("rpi4, x86_64-generic"),
                "{name}: {err}"
            );
        }
    }
}
