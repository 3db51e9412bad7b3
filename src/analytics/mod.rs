//! Evaluation metrics, bias checks and (later) drift and the poster map.

pub mod metrics;
