//! # iter8-envoy
//!
//! iter8 on a standalone Envoy, no Kubernetes needed:
//!
//! - [`router::EnvoyRouter`]: the core's `TrafficRouter`. Weights live in a route configuration
//!   Envoy loads from a watched file (file-based RDS, clusters by file-based CDS); every change
//!   is written to a temporary file and renamed over, and counts as applied only once Envoy's
//!   admin API reports the new `version_info`.
//! - [`metrics`]: a metrics configuration (the `iter8config-metrics` format) over Envoy's own
//!   statistics, and the Prometheus scrape configuration that labels them with the version.
//!
//! Supporting modules: [`bootstrap`] (Envoy's bootstrap), [`routes`] (the RDS/CDS documents),
//! [`admin`] (the admin API client), [`stats`] (per-cluster counters), [`error`].
//!
//! The live tutorial that runs this router against real processes is the `iter8-live` crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod bootstrap;
pub mod error;
pub mod metrics;
pub mod router;
pub mod routes;
pub mod stats;

pub use error::EnvoyError;
pub use router::EnvoyRouter;
