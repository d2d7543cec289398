//! The HTTP surface: iter8-analytics v0.2.1's endpoints under `/api/v1`.
//!
//! - `POST /api/v1/experiment/{check_and_increment,epsilon_t_greedy,posterior_bayesian_routing,
//!   optimistic_bayesian_routing}`, and the same under `/api/v1/analytics/canary/`;
//! - `GET /api/v1/health/health_check` -> `{"status": "OK"}`;
//! - `GET /api/v1/experiment/algorithms` -> each algorithm and its endpoint, as v0.2.1 answers.
//!
//! A strategy request is validated against its model, converted for the core, measured through
//! the [`MetricSource`] (one query set per distinct window; the reward metric too for the
//! Bayesian strategies), decided by `iter8_core::analytics::analyze`, and marshalled.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use iter8_core::Strategy;
use iter8_core::analytics::{self, AnalysisRequest};
use iter8_core::measurement::{MetricReadings, MetricsQuery};
use iter8_core::ports::{MetricSource, Randomness};
use serde_json::json;

use crate::error::ApiError;
use crate::request::{AnalyticsRequestWire, Prepared};
use crate::response::AnalyticsResponseWire;
use crate::schema::{self, Model};

/// iter8-analytics' summary conclusion when the window ended long ago.
pub const END_TIME_LONG_AGO: &str = "The experiment end time is more than 30 mins ago";

/// The algorithms served: (URL name, core strategy).
pub const ALGORITHMS: [(&str, Strategy); 4] = [
    ("check_and_increment", Strategy::CheckAndIncrement),
    ("epsilon_t_greedy", Strategy::EpsilonGreedy),
    (
        "posterior_bayesian_routing",
        Strategy::PosteriorBayesianRouting,
    ),
    (
        "optimistic_bayesian_routing",
        Strategy::OptimisticBayesianRouting,
    ),
];

/// A clock, so tests can fix `now`.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What the handlers share: the metric source, the URL reported as `metric_backend_url`, the
/// Bayesian strategies' randomness, and the clock.
pub struct AppState<M> {
    source: M,
    metric_backend_url: String,
    randomness: Box<dyn Randomness>,
    clock: Clock,
}

impl<M: MetricSource> AppState<M> {
    /// State over a metric source, using the system clock.
    pub fn new(
        source: M,
        metric_backend_url: impl Into<String>,
        randomness: impl Randomness + 'static,
    ) -> Self {
        AppState {
            source,
            metric_backend_url: metric_backend_url.into(),
            randomness: Box::new(randomness),
            clock: Arc::new(Utc::now),
        }
    }

    /// Replaces the clock (`end_time` defaults and the "30 mins ago" conclusion use it).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Answers one strategy request (the body as JSON), as the endpoint would.
    pub async fn answer(
        &self,
        strategy: Strategy,
        body: &serde_json::Value,
    ) -> Result<AnalyticsResponseWire, ApiError> {
        schema::validate(body, model(&strategy)).map_err(ApiError::Validation)?;
        let wire: AnalyticsRequestWire = serde_json::from_value(body.clone())
            .map_err(|e| ApiError::BadRequest(format!("payload: {e}")))?;
        let now = (self.clock)();
        let prepared = wire.prepare(strategy, now)?;
        let readings = self.measure(&prepared).await?;
        let outcome = analytics::analyze(&prepared.request, &readings, &*self.randomness)?;
        let mut response =
            AnalyticsResponseWire::from_outcome(&prepared, &outcome, &self.metric_backend_url);
        let long_ago = (now - prepared.baseline_window.end).num_seconds() >= 1800
            || (now - prepared.candidate_window.end).num_seconds() >= 10800;
        if long_ago
            && let Some(c) = response
                .assessment
                .as_mut()
                .and_then(|a| a.summary.as_mut())
                .and_then(|s| s.conclusions.as_mut())
        {
            c.insert(0, END_TIME_LONG_AGO.to_string());
        }
        Ok(response)
    }

    /// Measures the criteria (and the reward) of a prepared request; versions whose windows
    /// differ are measured separately.
    async fn measure(&self, prepared: &Prepared) -> Result<Vec<MetricReadings>, ApiError> {
        let request: &AnalysisRequest = &prepared.request;
        let mut metrics: Vec<_> = request.criteria.iter().map(|c| c.metric.clone()).collect();
        if let Some((reward, _)) = &request.reward {
            metrics.push(reward.clone());
        }
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        let query = |window| MetricsQuery {
            window,
            baseline: request.baseline.clone(),
            candidate: request.candidate.clone(),
            metrics: metrics.clone(),
        };
        let failed =
            |e: iter8_core::MetricError| ApiError::from(analytics::AnalyticsError::from(e));
        let baseline = self
            .source
            .measure(&query(prepared.baseline_window))
            .await
            .map_err(failed)?;
        if prepared.candidate_window == prepared.baseline_window {
            return Ok(baseline);
        }
        let candidate = self
            .source
            .measure(&query(prepared.candidate_window))
            .await
            .map_err(failed)?;
        Ok(baseline
            .into_iter()
            .zip(candidate)
            .map(|(b, c)| MetricReadings {
                candidate: c.candidate,
                ..b
            })
            .collect())
    }
}

/// The request model of a strategy's endpoint.
pub fn model(strategy: &Strategy) -> &'static Model {
    match strategy {
        Strategy::EpsilonGreedy => &schema::EPSILON_T_GREEDY_PARAMETERS,
        Strategy::PosteriorBayesianRouting | Strategy::OptimisticBayesianRouting => {
            &schema::BAYESIAN_ROUTING_PARAMETERS
        }
        _ => &schema::CHECK_AND_INCREMENT_PARAMETERS,
    }
}

async fn strategy_endpoint<M: MetricSource>(
    state: Arc<AppState<M>>,
    strategy: Strategy,
    body: Bytes,
) -> Response {
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&body);
    let result = match parsed {
        Err(e) => Err(ApiError::Json(e.to_string())),
        Ok(value) => state.answer(strategy, &value).await,
    };
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn health_check() -> Response {
    axum::Json(json!({"status": "OK"})).into_response()
}

/// iter8-analytics v0.2.1's answer, exactly: each algorithm and its endpoint relative to
/// `/api/v1` (`{"check_and_increment": {"endpoint": "/experiment/check_and_increment"}, ...}`).
async fn algorithms() -> Response {
    let list: serde_json::Map<String, serde_json::Value> = ALGORITHMS
        .iter()
        .map(|(name, _)| {
            let endpoint = json!({ "endpoint": format!("/experiment/{name}") });
            (name.to_string(), endpoint)
        })
        .collect();
    axum::Json(serde_json::Value::Object(list)).into_response()
}

/// The router serving the API over `state`.
pub fn router<M: MetricSource + 'static>(state: Arc<AppState<M>>) -> Router {
    let mut app = Router::new()
        .route("/api/v1/health/health_check", get(health_check))
        .route("/api/v1/experiment/algorithms", get(algorithms));
    for (name, strategy) in ALGORITHMS {
        for prefix in ["/api/v1/experiment", "/api/v1/analytics/canary"] {
            let (state, strategy) = (state.clone(), strategy.clone());
            app = app.route(
                &format!("{prefix}/{name}"),
                post(move |body: Bytes| strategy_endpoint(state, strategy, body)),
            );
        }
    }
    app.fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}
