//! # iter8-notifiers
//!
//! Tells people about experiments: every event the engine records (`ExperimentSucceeded`,
//! `IterationUpdate`, ...) can also go to Slack channels and to generic JSON webhooks
//! (CloudEvents, structured mode), as iter8 v0.2.1's notifiers did.
//!
//! - [`config`]: the `iter8config-notifiers` ConfigMap's channels (URL, kind, level, namespace
//!   and label filters);
//! - [`payload`]: what an event says (severity, traffic, progress, assessment) and its Slack and
//!   CloudEvents bodies;
//! - [`sender`]: [`Notifier`], the core's `EventRecorder` port: it filters and queues, and one
//!   task posts with a timeout, bounded retries, no redirects. A reconcile never waits on it.
//!
//! See `docs/operator.md` (Notifiers).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod payload;
pub mod sender;

pub use config::{Channel, ConfigError, Level, NotifierKind, parse_channels};
pub use payload::Notification;
pub use sender::{AlsoNotify, Notifier, SenderSettings};
