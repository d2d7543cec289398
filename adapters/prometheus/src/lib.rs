//! # iter8-prometheus
//!
//! The Prometheus adapter of iter8: renders the metrics ConfigMap's PromQL templates exactly as
//! iter8-analytics v0.2.1 does (`$interval`, `$offset_str`, `$entity_labels`), sends them to
//! Prometheus' HTTP API (`/api/v1/query`), and returns typed [`iter8_core::Measurement`]s: a
//! value, no data, NaN, ±Inf, or an error that says what failed.
//!
//! Compared with iter8-analytics it sends fewer queries: both versions are measured by one query
//! per template (the templates already group `by ($entity_labels)`), identical queries within
//! one decision are sent once, and the queries of one decision run concurrently.
//!
//! - [`render`]: template rendering (pure).
//! - [`labels`]: checks on version labels before they reach a query.
//! - [`settings`]: URL, timeout, retries, auth and TLS.
//! - [`token`]: a bearer token file, re-read when it is rotated.
//! - [`client`]: the HTTP client for the instant-query API.
//! - [`source`]: the [`iter8_core::ports::MetricSource`] implementation.
//! - [`window`]: the window of a retrospective analysis.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod labels;
pub mod render;
pub mod settings;
pub mod source;
pub mod token;
pub mod window;

pub use client::{PrometheusClient, Series};
pub use render::{RenderContext, RenderError, render};
pub use settings::{
    Auth, PrometheusSettings, RetryPolicy, Secret, SecretSource, SettingsError, TlsSettings,
};
pub use source::{Measured, PrometheusSource, QueryPlan};
pub use token::TokenFile;
