//! The errors of the Envoy adapter.

use std::path::PathBuf;
use std::time::Duration;

/// Why routing through Envoy failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// A routes or clusters file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The admin API could not be reached or answered something unexpected.
    #[error("Envoy admin API {url}: {reason}")]
    Admin {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// Envoy did not report the configuration that was written in time.
    #[error(
        "Envoy did not load {what} version {expected} within {}s (it reports {seen}); see its log for a rejected update",
        after.as_secs_f64()
    )]
    NotConfirmed {
        /// `routes` or `clusters`.
        what: &'static str,
        /// The version written.
        expected: String,
        /// What Envoy reports instead.
        seen: String,
        /// How long we waited.
        after: Duration,
    },
    /// The experiment names a version Envoy has no cluster (backend) for.
    #[error("no backend known for version `{0}`")]
    UnknownVersion(String),
}
