//! Marquee: tags movie posters with their genres on an edge board.
//!
//! Data flows one way: inputs ([`ingest`], [`camera`]) put [`poster::Poster`]s
//! on the [`queue`]; [`classify`] runs the [`model`] and commits each result
//! to the [`store`]; [`publish`] sends it over MQTT and [`web`] shows it.
//! [`app`] wires the stages and shuts them down in order. See
//! `docs/architecture.md`.

pub mod analytics;
pub mod app;
pub mod camera;
pub mod classify;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod drawing;
pub mod feedback;
pub mod ingest;
pub mod learning;
pub mod logging;
pub mod model;
pub mod offline;
pub mod poster;
pub mod publish;
pub mod queue;
pub mod store;
pub mod systemd;
pub mod telemetry;
mod threads;
pub mod vision;
pub mod web;
