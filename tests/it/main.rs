//! Every integration test, in one crate: Cargo links one test binary (`it`)
//! instead of one per file, which is most of the build time on a small
//! machine. One module per area; the helpers they share are in `common/`.
//!
//! The tests run as threads of this one process, in parallel, so nothing in
//! them may lean on process-wide state: no `std::env::set_var`, no
//! `set_current_dir`, no global tracing subscriber, no fixed port or shared
//! temp path. Each test starts its own daemon (127.0.0.1:0, a temp store),
//! its own broker on a free port, its own camera server and browser.
//!
//! Run one area with a filter: `cargo test --test it daemon_mqtt::`.

// Tests and benches may panic on what they did not expect: the house rule
// against unwrap/expect ([lints] in Cargo.toml) is for the daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod backbone_reference;
mod camera_change;
mod cli;
mod cli_daemon;
mod daemon_camera;
mod daemon_http;
mod daemon_mqtt;
mod daemon_retention;
mod daemon_watch;
mod dashboard_api;
mod dashboard_browser;
mod feedback;
mod hardening;
mod learning;
mod model;
mod packaging;
mod publish;
mod runtime;
mod systemd_units;
