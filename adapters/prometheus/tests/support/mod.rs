//! Test support shared by the real-Prometheus test and the benchmark: a real Prometheus started
//! on a free 127.0.0.1 port over synthetic Istio series. (The fake Prometheus is
//! iter8-test-support's.)
#![allow(dead_code)]

pub mod istio_data;
pub mod prometheus;
