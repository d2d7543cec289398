//! # iter8-live
//!
//! An application, not an adapter: live runs on this machine (`iter8 tutorial --live`). Real
//! `reviews` versions, Envoy routing between them (iter8-envoy), Prometheus scraping Envoy and
//! measured by iter8-prometheus, real traffic, and the core's driver deciding in real time.
//!
//! - [`stack`]: starts and stops the parts (processes stopped by PID when dropped).
//! - [`memory`]: the in-memory experiment store and event log.
//! - [`driver`]: drives one experiment to completion with `reconcile_once`, printing the table.
//! - [`tutorial`]: the iter8 v0.2 canary tutorial, parts 1 to 4, for real.
//! - [`load`]: a steady, bounded load generator for 127.0.0.1.
//! - [`process`]: child processes (Envoy, Prometheus) stopped by PID on drop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod load;
pub mod memory;
pub mod process;
pub mod stack;
pub mod tutorial;

use iter8_envoy::EnvoyError;

use crate::process::ProcessError;

/// Why a live run failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Envoy and/or Prometheus are not installed.
    #[error("missing programs:\n  {}", .0.join("\n  "))]
    Missing(Vec<String>),
    /// A process could not be started or did not become ready.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Envoy routing failed.
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    /// Something else needed for the run could not be set up.
    #[error("{0}")]
    Setup(String),
    /// An experiment did not complete in time.
    #[error("experiment {name} did not complete within {secs}s (last status: {status})")]
    Timeout {
        /// The experiment.
        name: String,
        /// The limit.
        secs: u64,
        /// Its last status message.
        status: String,
    },
    /// The output could not be written.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}
