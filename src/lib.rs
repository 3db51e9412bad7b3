//! Marquee: tags movie posters with their genres on an edge board.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod app;
pub mod camera;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod features;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod publish;
pub mod store;
pub mod systemd;
pub mod testing;
mod threads;
pub mod vision;
pub mod web;
