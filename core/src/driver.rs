//! The driver: one reconcile step over the ports — observe, decide, act. Generic async code
//! with no I/O of its own; adapters bring the I/O, an executor (tokio, ...) runs it.

use async_trait::async_trait;

use crate::action::{Action, Event, EventType};
use crate::analytics::{self, AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::engine::{self, Context, Decision, Step};
use crate::model::Experiment;
use crate::observation::Observations;
use crate::ports::{
    Analytics, EventRecorder, ExperimentStore, MetricSource, PortError, TargetLocator,
    TrafficRouter,
};

/// The adapters one reconcile runs over.
pub struct Ports<'a> {
    /// Finds targets.
    pub targets: &'a dyn TargetLocator,
    /// Routes traffic.
    pub router: &'a dyn TrafficRouter,
    /// Analyses.
    pub analytics: &'a dyn Analytics,
    /// Persists status and finalizers.
    pub store: &'a dyn ExperimentStore,
    /// Records events.
    pub events: &'a dyn EventRecorder,
}

/// Why a reconcile could not complete; the caller retries with backoff.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// Targets could not be looked up.
    #[error("looking up targets: {0}")]
    Targets(PortError),
    /// Routing could not be observed.
    #[error("observing routing: {0}")]
    Routing(PortError),
    /// The status or finalizer could not be written.
    #[error("writing the experiment: {0}")]
    Store(PortError),
    /// The engine asked for an analysis twice in one step (a bug).
    #[error("the engine asked for a second analysis in one step")]
    Protocol,
}

/// The built-in analytics: measures with a [`MetricSource`], decides with the core's strategies.
pub struct BuiltinAnalytics<M> {
    source: M,
}

impl<M> BuiltinAnalytics<M> {
    /// Analytics over a metric source.
    pub fn new(source: M) -> Self {
        BuiltinAnalytics { source }
    }
}

#[async_trait]
impl<M: MetricSource> Analytics for BuiltinAnalytics<M> {
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisOutcome, AnalyticsError> {
        let readings = self.source.measure(&request.metrics_query()).await?;
        analytics::analyze(request, &readings)
    }
}

/// Runs one reconcile of `experiment`: observes, decides, acts, writes the status and records
/// events. Returns the decision as written (after a routing failure: the failure's status).
pub async fn reconcile_once(
    experiment: &Experiment,
    ports: &Ports<'_>,
    ctx: &Context<'_>,
) -> Result<Decision, DriverError> {
    let targets = ports
        .targets
        .locate(experiment)
        .await
        .map_err(DriverError::Targets)?;
    let routing = ports
        .router
        .observe(experiment)
        .await
        .map_err(DriverError::Routing)?;
    let mut obs = Observations {
        targets,
        routing,
        analysis: None,
    };
    let mut decision = match engine::reconcile(experiment, &obs, ctx) {
        Step::Decided(d) => d,
        Step::Analyze(request) => {
            obs.analysis = Some(ports.analytics.analyze(&request).await);
            match engine::reconcile(experiment, &obs, ctx) {
                Step::Decided(d) => d,
                Step::Analyze(_) => return Err(DriverError::Protocol),
            }
        }
    };

    let mut remove_finalizer = false;
    let mut extra_events = Vec::new();
    for action in &decision.actions {
        match action {
            Action::AddFinalizer => ports
                .store
                .add_finalizer(experiment)
                .await
                .map_err(DriverError::Store)?,
            Action::Route(route) => {
                if let Err(e) = ports.router.apply(experiment, route).await {
                    decision = engine::routing_failed(experiment, &e.message, ctx);
                    remove_finalizer = false;
                    break;
                }
            }
            Action::DeleteTarget(name) => {
                // A failed cleanup does not undo the experiment's outcome; it is reported.
                if let Err(e) = ports.targets.delete_target(experiment, name).await {
                    extra_events.push(Event {
                        type_: EventType::Warning,
                        reason: "CleanupFailed".to_string(),
                        message: format!("could not delete {name}: {e}"),
                    });
                }
            }
            Action::RemoveFinalizer => remove_finalizer = true,
        }
    }
    if decision.status != experiment.status {
        ports
            .store
            .write_status(experiment, &decision.status)
            .await
            .map_err(DriverError::Store)?;
    }
    for event in decision.events.iter().chain(&extra_events) {
        // Events are best effort: losing one never fails a reconcile.
        let _ = ports.events.record(experiment, event).await;
    }
    if remove_finalizer {
        ports
            .store
            .remove_finalizer(experiment)
            .await
            .map_err(DriverError::Store)?;
    }
    Ok(decision)
}
