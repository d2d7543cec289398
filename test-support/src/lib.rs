//! # iter8-test-support
//!
//! What the tests of every iter8 crate share (a dev-dependency only, never shipped):
//!
//! - [`prometheus`]: one scriptable fake Prometheus on 127.0.0.1, stopped when dropped — for
//!   answers a real Prometheus will not give on demand (bad JSON, HTTP 500, no answer, a reset
//!   connection), for fixed series without starting one, and for Istio telemetry per version
//!   ([`telemetry`]: the tutorial's versions, a warm-up, the namespace in the answer).
//! - [`fixtures`]: files of the repository (examples, fixtures) by their path from its root.
//! - [`install_crypto_provider`]: what the binary does before its first TLS client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fixtures;
pub mod prometheus;
pub mod telemetry;

pub use prometheus::{FakePrometheus, Reply, Request};
pub use telemetry::{Behaviour, WARM_UP, tutorial_versions};

/// Installs ring as rustls' process-wide crypto provider, as the `iter8` binary does at
/// start-up (reqwest and kube are built without a default provider). Harmless when repeated.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
