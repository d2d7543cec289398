//! # iter8-core
//!
//! The sans-IO engine of iter8 canary experiments: the `Experiment` model, validation, the
//! metrics configuration, the analytics (check_and_increment and friends), the traffic state
//! machine, and the ports adapters implement. Nothing here performs I/O or reads a clock: time,
//! observations and measurements come in as arguments, decisions and actions go out as values.
//!
//! See `docs/architecture.md` for how the pieces fit together.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod string_enum;

pub mod driver;
pub mod duration;
pub mod engine;
pub mod manifest;
pub mod measurement;
pub mod metrics_config;
pub mod model;
pub mod plan;
pub mod ports;
pub mod routing_labels;
pub mod table;
pub mod validation;

pub use duration::GoDuration;
pub use measurement::{Measurement, MetricError, MetricErrorKind, MetricReadings, VersionReading};
pub use metrics_config::{AbsentValue, Metric, MetricsConfig};
pub use model::*;
pub mod action;
pub mod analytics;
pub mod observation;
