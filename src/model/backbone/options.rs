//! Which runtime runs the backbone, and how: `[inference] backend`,
//! `onnxruntime_library`, `onnxruntime_providers`, and `--backend`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the configuration asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// tract, pure Rust: always there.
    #[default]
    Tract,
    /// onnxruntime: an error when its library cannot be loaded.
    Onnxruntime,
    /// onnxruntime when its library loads, tract otherwise (saying why in
    /// the log).
    Auto,
}

/// What actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Tract,
    Onnxruntime,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Onnxruntime => "onnxruntime",
        }
    }
}

/// onnxruntime execution providers, in order of preference. Only `cpu` can
/// be tested on a machine without an NVIDIA GPU (docs/onnxruntime.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Tensorrt,
    Cuda,
    Cpu,
}

impl Provider {
    /// The name in the configuration (`tensorrt`, `cuda`, `cpu`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tensorrt => "tensorrt",
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }

    /// The name onnxruntime lists it under (`get_available_providers()`).
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::Tensorrt => "TensorrtExecutionProvider",
            Self::Cuda => "CUDAExecutionProvider",
            Self::Cpu => "CPUExecutionProvider",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub choice: RuntimeChoice,
    /// `libonnxruntime.so` to load; else `ORT_DYLIB_PATH`, else the library
    /// search path.
    pub library: Option<PathBuf>,
    pub providers: Vec<Provider>,
    /// onnxruntime sessions kept (one per classify worker: a session runs one
    /// poster at a time).
    pub sessions: usize,
    /// Where TensorRT keeps the engines it builds (minutes on a Jetson the
    /// first time): the store's folder, so a restart reuses them.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            choice: RuntimeChoice::Tract,
            library: None,
            providers: vec![Provider::Cpu],
            sessions: 1,
            cache_dir: None,
        }
    }
}

impl RuntimeOptions {
    pub fn with_choice(choice: RuntimeChoice) -> Self {
        Self {
            choice,
            ..Self::default()
        }
    }

    /// Whether a library was named (config or `ORT_DYLIB_PATH`): then a
    /// failure under `auto` is a warning; a probe of the search path that
    /// finds nothing is only news.
    pub fn library_named(&self) -> bool {
        self.library.is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty())
    }

    /// The library file to load and where that came from, for the errors.
    pub fn library_path(&self) -> (PathBuf, &'static str) {
        if let Some(p) = &self.library {
            return (p.clone(), "[inference] onnxruntime_library");
        }
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), "ORT_DYLIB_PATH"),
            _ => (
                PathBuf::from("libonnxruntime.so"),
                "the library search path (set [inference] onnxruntime_library or ORT_DYLIB_PATH)",
            ),
        }
    }
}
