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
//! - [`resident_memory_kib`]: the process' resident memory, for memory bounds under load.
//! - [`chance_tolerance`]: how far a served share may be from the routed one by chance alone.
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

/// This process' resident memory in KiB (`VmRSS` in `/proc/self/status`, Linux), for tests
/// that check a server's memory stays bounded under load.
pub fn resident_memory_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status")
}

/// How far, in percentage points, the share a router served over `requests` independent random
/// choices may be from the `routed_percent` it was told, by chance alone: five standard
/// deviations of the binomial count. A correct router fails this about once in 1.7 million
/// checks (a fixed band of a few points fails every few hundred), while 300 requests at 40 %
/// still tell 40 % from 20 % or 60 %.
pub fn chance_tolerance(routed_percent: f64, requests: u64) -> f64 {
    let p = (routed_percent / 100.0).clamp(0.0, 1.0);
    let n = requests.max(1) as f64;
    500.0 * (p * (1.0 - p) / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::chance_tolerance;

    #[test]
    fn the_band_is_five_binomial_deviations() {
        // 300 requests at 40 %: sigma = sqrt(0.24 / 300) = 2.83 points.
        assert!((chance_tolerance(40.0, 300) - 14.14).abs() < 0.01);
        // Four times the requests halve the band; an all-or-nothing split has none.
        assert!((chance_tolerance(40.0, 1200) - 7.07).abs() < 0.01);
        assert_eq!(chance_tolerance(0.0, 500), 0.0);
        assert_eq!(chance_tolerance(100.0, 500), 0.0);
    }
}
