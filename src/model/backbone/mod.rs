//! The backbone: the ONNX graph that turns a normalised poster into its
//! pooled features, run by one of two runtimes behind [`Runtime`]: tract
//! (pure Rust, always built, the default) or onnxruntime (cargo feature
//! `onnxruntime`, `libonnxruntime.so` loaded at run time).

#[cfg(feature = "onnxruntime")]
mod onnxruntime;
mod options;
mod tract;

use std::sync::Arc;

use super::manifest::BackboneSpec;
pub use options::{Provider, RuntimeChoice, RuntimeKind, RuntimeOptions};

#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    #[error("cannot load the ONNX backbone: {0:#}")]
    Load(anyhow::Error),
    #[error("backbone inference failed: {0:#}")]
    Run(anyhow::Error),
    #[error("backbone returned {got} features, the manifest says {expected}")]
    FeatureDim { got: usize, expected: usize },
    #[error("input tensor has {got} values, the backbone takes {expected}")]
    InputSize { got: usize, expected: usize },
    /// The onnxruntime library could not be used (missing, wrong version,
    /// a provider it lacks, or a build without the feature).
    #[error("{0}")]
    Onnxruntime(String),
}

/// What a runtime does: one normalised NCHW image in, the graph's feature
/// output out. Implementations are shared by every classify worker.
pub trait Runtime: Send + Sync {
    fn kind(&self) -> RuntimeKind;
    /// `input` is `3 * height * width` planar floats, already checked.
    fn run(&self, input: &[f32]) -> Result<Vec<f32>, BackboneError>;
    /// What was loaded, for the log and the model card (library version,
    /// providers).
    fn describe(&self) -> String;
}

/// A loaded backbone, cheap to clone, shared by every worker thread.
#[derive(Clone)]
pub struct Backbone {
    runtime: Arc<dyn Runtime>,
    width: usize,
    height: usize,
    feature_dim: usize,
}

impl Backbone {
    /// tract, the default runtime.
    pub fn from_onnx_bytes(bytes: &[u8], spec: &BackboneSpec) -> Result<Self, BackboneError> {
        Ok(Self::with_runtime(
            Arc::new(tract::TractRuntime::load(bytes, spec)?),
            spec,
        ))
    }

    /// One runtime on one file. `auto` is decided by the caller, which
    /// picks the file for the runtime too ([`crate::model::load_backbone_with`]).
    pub fn load(
        bytes: &[u8],
        spec: &BackboneSpec,
        kind: RuntimeKind,
        options: &RuntimeOptions,
    ) -> Result<Self, BackboneError> {
        match kind {
            RuntimeKind::Tract => Self::from_onnx_bytes(bytes, spec),
            RuntimeKind::Onnxruntime => Self::onnxruntime(bytes, spec, options),
        }
    }

    #[cfg(feature = "onnxruntime")]
    fn onnxruntime(
        bytes: &[u8],
        spec: &BackboneSpec,
        options: &RuntimeOptions,
    ) -> Result<Self, BackboneError> {
        Ok(Self::with_runtime(
            Arc::new(onnxruntime::OrtRuntime::load(bytes, spec, options)?),
            spec,
        ))
    }

    #[cfg(not(feature = "onnxruntime"))]
    fn onnxruntime(
        _bytes: &[u8],
        _spec: &BackboneSpec,
        _options: &RuntimeOptions,
    ) -> Result<Self, BackboneError> {
        Err(BackboneError::Onnxruntime(
            "this marquee was built without onnxruntime support (cargo feature `onnxruntime`); \
             set [inference] backend = \"tract\" or install a build with it"
                .into(),
        ))
    }

    fn with_runtime(runtime: Arc<dyn Runtime>, spec: &BackboneSpec) -> Self {
        Self {
            runtime,
            width: spec.input_size[0] as usize,
            height: spec.input_size[1] as usize,
            feature_dim: spec.feature_dim,
        }
    }

    pub fn kind(&self) -> RuntimeKind {
        self.runtime.kind()
    }

    pub fn describe(&self) -> String {
        self.runtime.describe()
    }

    /// Run one image (`3 * height * width` planar floats) through the backbone.
    pub fn features(&self, tensor: Vec<f32>) -> Result<Vec<f32>, BackboneError> {
        let expected = 3 * self.height * self.width;
        if tensor.len() != expected {
            return Err(BackboneError::InputSize {
                got: tensor.len(),
                expected,
            });
        }
        let features = self.runtime.run(&tensor)?;
        if features.len() != self.feature_dim {
            return Err(BackboneError::FeatureDim {
                got: features.len(),
                expected: self.feature_dim,
            });
        }
        Ok(features)
    }
}
