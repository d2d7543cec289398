//! The ports: small async traits for what the engine needs from the world. Adapters implement
//! them; [`crate::driver`] runs one reconcile step over them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::action::{Event, RoutingAction};
use crate::analytics::{AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::measurement::{MetricError, MetricReadings, MetricsQuery};
use crate::model::{Experiment, ExperimentStatus};
use crate::observation::{RoutingObservation, Targets};

/// A failure of an adapter other than the metrics backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// What happened, for users.
    pub message: String,
}

impl PortError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        PortError {
            message: message.into(),
        }
    }
}

/// Finds the experiment's Service, baseline and candidate, and deletes a loser on cleanup.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TargetLocator: Send + Sync {
    /// Which targets exist, and whether another running experiment claims them.
    async fn locate(&self, experiment: &Experiment) -> Result<Targets, PortError>;
    /// Deletes a version (`cleanup: delete`).
    async fn delete_target(&self, experiment: &Experiment, name: &str) -> Result<(), PortError>;
}

/// Reads and changes how traffic is split between the versions.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// What routing does now.
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError>;
    /// Applies a change; returns only once the change is in place.
    async fn apply(&self, experiment: &Experiment, action: &RoutingAction)
    -> Result<(), PortError>;
}

/// Measures metrics for both versions over a window.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// One [`MetricReadings`] per entry of `query.metrics`, in order. A failure of the whole
    /// backend is an `Err`; a failure of one query is a [`crate::Measurement::Error`] inside.
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError>;
}

/// Decides the next split (built in over a [`MetricSource`], or a remote service).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Analytics: Send + Sync {
    /// Analyses one decision.
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisOutcome, AnalyticsError>;
}

/// Persists the experiment's status and finalizer.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ExperimentStore: Send + Sync {
    /// Writes the status (the status subresource).
    async fn write_status(
        &self,
        experiment: &Experiment,
        status: &ExperimentStatus,
    ) -> Result<(), PortError>;
    /// Adds iter8's finalizer.
    async fn add_finalizer(&self, experiment: &Experiment) -> Result<(), PortError>;
    /// Removes iter8's finalizer.
    async fn remove_finalizer(&self, experiment: &Experiment) -> Result<(), PortError>;
}

/// Records events on the experiment.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventRecorder: Send + Sync {
    /// Records one event. Failing to record an event never fails a reconcile.
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError>;
}

/// Where the Bayesian strategies' random numbers come from. The core draws nothing it is not
/// handed: an implementation gives the same draws for the same `seed` and `call`, so the same
/// request decides the same way (`iter8-rand` is the one the binary and the simulation use).
#[cfg_attr(test, mockall::automock)]
pub trait Randomness: Send + Sync {
    /// The draws of one call of a strategy: `seed` is the request's, `call` counts the
    /// strategy's calls for one experiment (successive calls with one seed draw differently).
    fn draws(&self, seed: u64, call: u64) -> Box<dyn Draws>;
}

/// One stream of random draws (see [`Randomness`]).
pub trait Draws {
    /// A Beta(`alpha`, `beta`) draw in `[0, 1]`; called only with both positive and finite.
    fn beta(&mut self, alpha: f64, beta: f64) -> f64;
    /// A normal draw with mean `mean` and standard deviation `sd`; called only with a finite,
    /// non-negative `sd`.
    fn normal(&mut self, mean: f64, sd: f64) -> f64;
}

/// Builds the link to the experiment's dashboard (`status.grafanaURL`).
pub trait DashboardLink: Send + Sync {
    /// The URL for the experiment between `from` and `to` (`None`: up to now).
    fn url(
        &self,
        experiment: &Experiment,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Option<String>;
}
