//! The tract backbone: loaded once, optimised, shared by every worker thread.

use std::io::Cursor;
use std::sync::Arc;
use tract_onnx::prelude::*;

use super::manifest::BackboneSpec;

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
}

type Plan = Arc<TypedRunnableModel>;

/// An optimised, runnable backbone that maps a normalised NCHW image to
/// its pooled feature vector.
#[derive(Clone)]
pub struct Backbone {
    plan: Plan,
    width: usize,
    height: usize,
    feature_dim: usize,
}

impl Backbone {
    pub fn from_onnx_bytes(bytes: &[u8], spec: &BackboneSpec) -> Result<Self, BackboneError> {
        let width = spec.input_size[0] as usize;
        let height = spec.input_size[1] as usize;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, height, width]).into()))
            .and_then(|m| m.with_outputs_by_name([spec.feature_output.as_str()]))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(BackboneError::Load)?;
        Ok(Self {
            plan,
            width,
            height,
            feature_dim: spec.feature_dim,
        })
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
        let input = Tensor::from_shape(&[1, 3, self.height, self.width], &tensor)
            .map_err(BackboneError::Run)?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(BackboneError::Run)?;
        let first = outputs
            .first()
            .ok_or_else(|| BackboneError::Run(anyhow::anyhow!("the graph has no output")))?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(BackboneError::Run)?;
        let features: Vec<f32> = view.iter().copied().collect();
        if features.len() != self.feature_dim {
            return Err(BackboneError::FeatureDim {
                got: features.len(),
                expected: self.feature_dim,
            });
        }
        Ok(features)
    }
}
