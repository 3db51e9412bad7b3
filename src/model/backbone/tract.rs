//! The tract runtime: the graph loaded once, optimised, and run by every
//! worker at once (a tract plan is shared read-only).

use std::io::Cursor;
use std::sync::Arc;
use tract_onnx::prelude::*;

use super::{BackboneError, Runtime, RuntimeKind};
use crate::model::manifest::BackboneSpec;

pub struct TractRuntime {
    plan: Arc<TypedRunnableModel>,
    shape: [usize; 4],
}

impl TractRuntime {
    pub fn load(bytes: &[u8], spec: &BackboneSpec) -> Result<Self, BackboneError> {
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
            shape: [1, 3, height, width],
        })
    }
}

impl Runtime for TractRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Tract
    }

    fn describe(&self) -> String {
        "tract-onnx 0.23 (CPU)".into()
    }

    fn run(&self, input: &[f32]) -> Result<Vec<f32>, BackboneError> {
        let input = Tensor::from_shape(&self.shape, input).map_err(BackboneError::Run)?;
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
        Ok(view.iter().copied().collect())
    }
}
