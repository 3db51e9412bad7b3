//! Helpers shared by the integration tests (`mod common;` in each test file).
//! Each test binary uses a different subset, hence the allow.
#![allow(dead_code)]

pub mod broker;
