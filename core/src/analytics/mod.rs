//! The analytics: given measurements and the last state, the candidate's next share of traffic
//! and the assessment of every success criterion.
//!
//! [`analyze`] dispatches on the strategy; each strategy is a pure function of its inputs.

mod bayesian;
mod check_and_increment;
mod epsilon_greedy;
mod increment_without_check;
mod state;

pub use bayesian::{
    BayesianState, BayesianVersionState, Belief, Flavor, TRIALS, bayesian_routing,
    confidence_conclusion,
};
pub use check_and_increment::{
    CheckAndIncrementState, CriterionInfo, VersionState, check_and_increment, conclusions,
};
pub use epsilon_greedy::{
    EFFECTIVE_ITERATION_COUNT, EpsilonGreedyState, epsilon_t_greedy, exploitation_rate,
    exploration_rate,
};
pub use increment_without_check::increment_without_check;
pub use state::AnalysisState;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::measurement::{MetricError, MetricReadings, MetricsQuery, VersionTags, Window};
use crate::metrics_config::Metric;
use crate::model::{Assessment, MinMax, Strategy};
use crate::plan::{Criterion, Plan};
use crate::ports::Randomness;

/// Everything an analytics implementation (built in or remote) needs for one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRequest {
    /// The strategy.
    pub strategy: Strategy,
    /// From the experiment's start to now.
    pub window: Window,
    /// The baseline's labels (shared with the [`MetricsQuery`]s built from this request).
    pub baseline: Arc<VersionTags>,
    /// The candidate's labels.
    pub candidate: Arc<VersionTags>,
    /// The success criteria with their metrics.
    pub criteria: Vec<Criterion>,
    /// Percentage points per step.
    pub step_size: f64,
    /// Cap on the candidate's share.
    pub max_traffic_percentage: f64,
    /// Bayesian confidence.
    pub confidence: f64,
    /// The state the previous analysis returned (`None` on the first call).
    pub last_state: Option<AnalysisState>,
    /// Where a remote analytics service would be (`spec.analysis.analyticsService`).
    pub analytics_service: String,
    /// Seed of the Bayesian strategies' draws: the same seed and inputs give the same decision.
    pub seed: u64,
    /// The reward metric and its range (Bayesian strategies), if any.
    pub reward: Option<(Metric, Option<MinMax>)>,
}

impl AnalysisRequest {
    /// The request for a plan over a window, continuing from `last_state`: the one way a
    /// request is built (the engine asks with it, `iter8 analyze` and the benchmarks use it).
    pub fn new(plan: &Plan, window: Window, last_state: Option<AnalysisState>) -> Self {
        AnalysisRequest {
            strategy: plan.strategy.clone(),
            window,
            baseline: Arc::new(plan.baseline_tags()),
            candidate: Arc::new(plan.candidate_tags()),
            criteria: plan.criteria.clone(),
            step_size: plan.step_size,
            max_traffic_percentage: plan.max_traffic_percentage,
            confidence: plan.confidence,
            last_state,
            analytics_service: plan.analytics_service.clone(),
            seed: plan.seed,
            reward: plan.reward.clone(),
        }
    }

    /// The measurements this request needs from a metrics backend.
    pub fn metrics_query(&self) -> MetricsQuery {
        MetricsQuery {
            window: self.window,
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            metrics: self
                .criteria
                .iter()
                .map(|c| c.metric.clone())
                .chain(self.reward_metric().cloned())
                .collect(),
        }
    }

    /// The reward metric, measured after the criteria's, when the strategy uses one.
    fn reward_metric(&self) -> Option<&crate::metrics_config::Metric> {
        let bayesian = matches!(
            self.strategy,
            Strategy::PosteriorBayesianRouting | Strategy::OptimisticBayesianRouting
        );
        self.reward.as_ref().filter(|_| bayesian).map(|(m, _)| m)
    }
}

/// What an analysis decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisOutcome {
    /// The candidate's recommended share, in percent (may be fractional).
    pub candidate_traffic_percentage: f64,
    /// The verdicts.
    pub assessment: Assessment,
    /// State to pass to the next analysis.
    pub state: AnalysisState,
}

impl AnalysisOutcome {
    /// An outcome whose state is a strategy's own typed state, carried as JSON.
    pub fn with_state<S: Serialize>(
        candidate_traffic_percentage: f64,
        assessment: Assessment,
        state: &S,
    ) -> Result<Self, AnalyticsError> {
        Ok(AnalysisOutcome {
            candidate_traffic_percentage,
            assessment,
            state: AnalysisState::of(state)?,
        })
    }
}

/// Why an analysis could not be made. An error never moves traffic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyticsError {
    /// The metrics backend failed.
    #[error("metrics backend: {0}")]
    Metrics(#[from] MetricError),
    /// The request is not one this analytics can answer (bad state, unsupported strategy, ...).
    #[error("{0}")]
    Invalid(String),
    /// A remote analytics service failed.
    #[error("analytics service: {0}")]
    Service(String),
}

/// Runs the built-in analytics for a request over measured readings (one per criterion, in
/// order); the Bayesian strategies draw from `randomness`.
pub fn analyze(
    request: &AnalysisRequest,
    readings: &[MetricReadings],
    randomness: &dyn Randomness,
) -> Result<AnalysisOutcome, AnalyticsError> {
    match request.strategy {
        Strategy::CheckAndIncrement => check_and_increment(request, readings),
        Strategy::IncrementWithoutCheck => increment_without_check(request),
        Strategy::EpsilonGreedy => epsilon_t_greedy(request, readings),
        Strategy::PosteriorBayesianRouting => {
            bayesian_routing(request, readings, Flavor::Posterior, randomness)
        }
        Strategy::OptimisticBayesianRouting => {
            bayesian_routing(request, readings, Flavor::Optimistic, randomness)
        }
        ref other => Err(AnalyticsError::Invalid(format!(
            "strategy `{other}` is not available in the built-in analytics yet"
        ))),
    }
}
