//! # iter8-analytics
//!
//! iter8-analytics v0.2.1's REST API, served over iter8-core's strategies and a
//! [`iter8_core::ports::MetricSource`] (Prometheus in production), and a client of that API
//! implementing the core's [`iter8_core::ports::Analytics`] port (remote analytics).
//!
//! - [`schema`]: request validation as flask_restplus reports it.
//! - [`request`]: the request's wire types and their conversion into the core's request.
//! - [`response`]: the response's wire types, marshalled like flask_restplus.
//! - [`routes`]: the HTTP surface (axum): endpoints, handlers and error bodies.
//! - [`serve`]: the API on a TCP listener until shutdown (`iter8 analytics serve` wires it to
//!   Prometheus).
//! - [`remote`]: [`RemoteAnalytics`], the client adapter.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod remote;
pub mod request;
pub mod response;
pub mod routes;
pub mod schema;
pub mod serve;

pub use error::ApiError;
pub use remote::{RemoteAnalytics, RemoteError};
pub use routes::{AppState, router};
pub use serve::ServeError;
