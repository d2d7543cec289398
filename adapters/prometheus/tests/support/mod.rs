//! Test support shared by the integration tests and the benchmark: a real Prometheus started on
//! a free 127.0.0.1 port over synthetic Istio series, and a tiny fake HTTP server.
#![allow(dead_code)]

pub mod fake_http;
pub mod istio_data;
pub mod prometheus;
