//! The traffic state machine: one pure function from (experiment, observations, now) to the
//! new status, the actions to perform and when to be woken next.
//!
//! The contract with a driver (see [`crate::driver`]):
//! 1. observe targets and routing, call [`reconcile`];
//! 2. on [`Step::Analyze`], run the analysis it asks for and call [`reconcile`] again with the
//!    outcome in [`Observations::analysis`];
//! 3. on [`Step::Decided`], perform the actions in order; if a routing action fails, write
//!    [`routing_failed`]'s status instead of the decision's (so a split that was not applied is
//!    never reported); otherwise write the decision's status and record its events;
//! 4. reconcile again after `requeue_after`, or when a watched object changes.

mod draft;
pub mod messages;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::action::{Action, Event, RoutingAction, Winner};
use crate::analytics::{self, AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::metrics_config::MetricsConfig;
use crate::model::{
    ConditionType, Experiment, ExperimentStatus, OnSuccess, Phase, Strategy, TrafficSplit,
    UserAction,
};
use crate::observation::Observations;
use crate::plan::Settings;
use crate::ports::DashboardLink;
use crate::validation;
use draft::Draft;
use messages::*;

/// How soon to retry after a failing dependency (never later than the interval).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A dashboard link that links nowhere (for embedders without Grafana).
pub struct NoDashboard;

impl DashboardLink for NoDashboard {
    fn url(&self, _: &Experiment, _: DateTime<Utc>, _: Option<DateTime<Utc>>) -> Option<String> {
        None
    }
}

/// What the engine needs besides the experiment and the observations.
pub struct Context<'a> {
    /// The metrics configuration the experiment runs with.
    pub metrics: &'a MetricsConfig,
    /// Builds `status.grafanaURL`.
    pub dashboard: &'a dyn DashboardLink,
    /// The time of the decision.
    pub now: DateTime<Utc>,
    /// Set when the metrics configuration could not be read: the experiment pauses with
    /// `SyncMetricsError`.
    pub metrics_error: Option<String>,
    /// Fast abort: also check `stopOnFailure` criteria this often between interval boundaries
    /// (traffic still moves only at the boundaries). `None`: only at the boundaries, as v0.2.
    pub abort_check_every: Option<Duration>,
}

impl<'a> Context<'a> {
    /// A context without a dashboard link.
    pub fn new(metrics: &'a MetricsConfig, now: DateTime<Utc>) -> Self {
        Context {
            metrics,
            dashboard: &NoDashboard,
            now,
            metrics_error: None,
            abort_check_every: None,
        }
    }
}

/// The outcome of a reconcile: what to write, do and record, and when to come back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new status.
    pub status: ExperimentStatus,
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// Events to record.
    pub events: Vec<Event>,
    /// Reconcile again after this long (`None`: only when something changes).
    pub requeue_after: Option<Duration>,
}

/// One step of the driver loop.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// Run this analysis and call [`reconcile`] again with its outcome.
    Analyze(AnalysisRequest),
    /// The decision.
    Decided(Decision),
}

/// Decides what to do for an experiment now.
pub fn reconcile(exp: &Experiment, obs: &Observations, ctx: &Context) -> Step {
    decide(
        exp,
        obs,
        obs.analysis.as_ref().map(Outcome::Borrowed),
        ctx,
        false,
    )
}

/// [`reconcile`], taking the analysis outcome out of `obs.analysis` (left `None`) instead of
/// copying the assessment and state the status keeps of it: for a driver that owns the
/// observations and is done with the outcome once decided.
pub fn reconcile_taking_analysis(exp: &Experiment, obs: &mut Observations, ctx: &Context) -> Step {
    let analysis = obs.analysis.take().map(Outcome::Owned);
    decide(exp, obs, analysis, ctx, false)
}

/// [`reconcile_taking_analysis`] for the driver's second call of an iteration, which holds the
/// experiment and the context borrowed since the first call asked for the analysis: they are
/// the ones that call validated (it asks for an analysis only then), so they are not validated
/// again.
pub(crate) fn reconcile_validated_taking_analysis(
    exp: &Experiment,
    obs: &mut Observations,
    ctx: &Context,
) -> Step {
    let analysis = obs.analysis.take().map(Outcome::Owned);
    decide(exp, obs, analysis, ctx, true)
}

/// An analysis' outcome, lent by the caller or given.
enum Outcome<'a> {
    Borrowed(&'a Result<AnalysisOutcome, AnalyticsError>),
    Owned(Result<AnalysisOutcome, AnalyticsError>),
}

impl Outcome<'_> {
    fn get(&self) -> &Result<AnalysisOutcome, AnalyticsError> {
        match self {
            Outcome::Borrowed(r) => r,
            Outcome::Owned(r) => r,
        }
    }

    /// The outcome to keep, copied only if it was lent.
    fn into_result(self) -> Result<AnalysisOutcome, AnalyticsError> {
        match self {
            Outcome::Borrowed(r) => r.clone(),
            Outcome::Owned(r) => r,
        }
    }
}

fn decide(
    exp: &Experiment,
    obs: &Observations,
    analysis: Option<Outcome<'_>>,
    ctx: &Context,
    validated: bool,
) -> Step {
    let mut d = Draft::new(exp, ctx.now);
    let started = exp.status.start_timestamp.is_some();

    if exp.is_being_deleted() {
        if exp.has_finalizer() {
            // Roll traffic back before letting the experiment go.
            if started && !exp.status.is_completed() {
                d.route(RoutingAction::Finalize {
                    winner: Winner::Baseline,
                    split: TrafficSplit::ALL_BASELINE,
                });
                d.status_mut().traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
            }
            d.actions.push(Action::RemoveFinalizer);
        }
        return Step::Decided(d.finish(None));
    }
    if !exp.has_finalizer() {
        d.actions.push(Action::AddFinalizer);
    }

    if exp.status.is_completed() {
        // Re-assert the final routing until the observed routing says so.
        let ours = obs.routing.held_by.is_none();
        if let Some(observed) = obs.routing.split
            && ours
            && observed != exp.status.split()
        {
            let split = exp.status.split();
            d.route(RoutingAction::Finalize {
                winner: winner_of(split),
                split,
            });
        }
        return Step::Decided(d.finish(None));
    }

    if let Some(err) = &ctx.metrics_error {
        let text = format!("Fail to read metrics: {err}");
        d.pause(
            SYNC_METRICS_ERROR,
            &text,
            Some(ConditionType::MetricsSynced),
        );
        return Step::Decided(d.finish(Some(RETRY_AFTER)));
    }
    // Only the settings: the full plan (criteria with their metrics) is built when an analysis
    // is asked for.
    let checked = if validated {
        Ok(())
    } else {
        validation::check(exp, ctx.metrics)
    };
    let plan = match checked {
        Ok(()) => Settings::of(exp),
        Err(problems) => {
            let text = problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            d.pause(VALIDATION_ERROR, &text, Some(ConditionType::MetricsSynced));
            return Step::Decided(d.finish(None));
        }
    };
    d.condition(ConditionType::MetricsSynced, true, "", "");

    match &exp.action {
        Some(UserAction::OverrideSuccess) => {
            return Step::Decided(complete(d, &plan, ctx, true, ABORTED, None));
        }
        Some(UserAction::OverrideFailure) => {
            return Step::Decided(complete(d, &plan, ctx, false, ABORTED, None));
        }
        Some(UserAction::Pause) => {
            d.status_mut().phase = Some(Phase::Pause);
            d.status_mut().message = Some(PAUSE.to_string());
            return Step::Decided(d.finish(None));
        }
        Some(UserAction::Resume) if exp.status.message.as_deref() == Some(PAUSE) => {
            d.status_mut().phase = Some(Phase::Progressing);
            d.status_mut().message = Some(RESUME.to_string());
        }
        _ => {}
    }

    let t = &obs.targets;
    let missing = [
        (t.service, "Service"),
        (t.baseline, "Baseline"),
        (t.candidate, "Candidate"),
    ]
    .into_iter()
    .find_map(|(present, what)| (!present).then_some(what));
    if let Some(what) = missing {
        if !started {
            let text = format!("Missing {what}");
            d.pause(
                TARGETS_NOT_FOUND,
                &text,
                Some(ConditionType::TargetsProvided),
            );
            d.status_mut().traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
            return Step::Decided(d.finish(None));
        }
        let text = format!("{what} Deleted");
        d.condition(
            ConditionType::TargetsProvided,
            false,
            TARGETS_NOT_FOUND,
            &text,
        );
        // Baseline gone: finish on the candidate; candidate or service gone: back to baseline.
        let decision = if what == "Baseline" {
            complete(d, &plan, ctx, true, ABORTED, Some(Winner::Candidate))
        } else {
            complete(d, &plan, ctx, false, ABORTED, None)
        };
        return Step::Decided(decision);
    }
    if let Some(other) = &t.claimed_by
        && !started
    {
        let text = format!("{} is being involved in other experiment", plan.service);
        d.pause(TARGETS_NOT_FOUND, &text, None);
        d.condition(
            ConditionType::TargetsProvided,
            false,
            TARGETS_NOT_FOUND,
            &format!("targets are used by running experiment {other}"),
        );
        d.status_mut().traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
        return Step::Decided(d.finish(None));
    }
    d.condition(ConditionType::TargetsProvided, true, "", "");

    if let Some(other) = &obs.routing.held_by {
        let text = format!(
            "routing rules of {} are held by experiment {other}",
            plan.service
        );
        d.pause(
            ROUTING_RULES_ERROR,
            &text,
            Some(ConditionType::RoutingRulesReady),
        );
        return Step::Decided(d.finish(Some(RETRY_AFTER.min(plan.interval))));
    }

    if !started {
        d.status_mut().start_timestamp = Some(ctx.now);
        d.status_mut().traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
        d.status_mut().grafana_url = ctx.dashboard.url(exp, ctx.now, None);
        d.route(RoutingAction::Initialize);
    }
    d.condition(ConditionType::RoutingRulesReady, true, "", "");

    let due_at = d
        .status()
        .last_increment_time
        .map(|t| t + chrono::Duration::from_std(plan.interval).unwrap_or(chrono::TimeDelta::MAX));
    let due = d.status().current_iteration == 0 || due_at.is_none_or(|t| ctx.now >= t);
    if !due {
        if let Some(observed) = obs.routing.split
            && observed != d.status().split()
        {
            // Someone edited the weights by hand: put ours back.
            let split = d.status().split();
            d.route(RoutingAction::SetSplit(split));
        }
        if d.status().phase != Some(Phase::Progressing) && d.status().current_iteration > 0 {
            // Back from a pause for a failing dependency: progressing again.
            let text = format!("Iteration {} Started", d.status().current_iteration);
            d.set_message(Phase::Progressing, ITERATION_UPDATE, &text);
        }
        let mut wait = due_at
            .and_then(|t| (t - ctx.now).to_std().ok())
            .unwrap_or(plan.interval);
        if let Some(every) = abort_check_every(&plan, ctx) {
            // Between boundaries only an abort can happen: the outcome's state and split are
            // ignored so that the boundary's change detection sees the same data it would
            // have seen without the check. Errors here are left to the boundary's analysis.
            match analysis {
                None if d.status().current_iteration > 0 => {
                    let request = analysis_request(exp, &plan, d.status(), ctx);
                    return Step::Analyze(request);
                }
                Some(a)
                    if a.get()
                        .as_ref()
                        .is_ok_and(|o| o.assessment.abort_experiment) =>
                {
                    if let Ok(o) = a.into_result() {
                        d.set_assessment(o.assessment);
                    }
                    return Step::Decided(complete(d, &plan, ctx, false, ABORTED, None));
                }
                _ => {}
            }
            wait = wait.min(every);
        }
        return Step::Decided(d.finish(Some(wait)));
    }

    // The request is built only when it is needed: on the second call of an iteration the
    // outcome is already here.
    let outcome: AnalysisOutcome = if plan.strategy == Strategy::IncrementWithoutCheck {
        let request = analysis_request(exp, &plan, d.status(), ctx);
        match analytics::increment_without_check(&request) {
            Ok(o) => o,
            Err(e) => return Step::Decided(analytics_failed(d, &e.to_string())),
        }
    } else {
        let Some(a) = analysis else {
            return Step::Analyze(analysis_request(exp, &plan, d.status(), ctx));
        };
        match a.into_result() {
            Ok(o) => o,
            Err(e) => return Step::Decided(analytics_failed(d, &e.to_string())),
        }
    };
    d.condition(ConditionType::AnalyticsServiceNormal, true, "", "");
    let all_met = outcome.assessment.all_success_criteria_met;
    let abort = outcome.assessment.abort_experiment;
    let first = d.status().current_iteration == 0;
    d.set_analysis_state(outcome.state);
    let candidate_share = outcome.candidate_traffic_percentage;
    d.set_assessment(outcome.assessment);

    if abort {
        return Step::Decided(complete(d, &plan, ctx, false, ABORTED, None));
    }
    if d.status().current_iteration >= plan.max_iterations {
        let decision = if !plan.has_criteria {
            complete(d, &plan, ctx, true, LAST_ITERATION_COMPLETED, None)
        } else if all_met {
            complete(d, &plan, ctx, true, ALL_CRITERIA_MET, None)
        } else {
            complete(d, &plan, ctx, false, NOT_ALL_CRITERIA_MET, None)
        };
        return Step::Decided(decision);
    }
    // check_and_increment moves traffic only on the first iteration or when every criterion is
    // met (as iter8 v0.2); the other strategies' recommendation is their whole point, so it is
    // applied as given. Weights are whole percentages, truncated as iter8 v0.2 does, and never
    // above the cap.
    let gated = matches!(
        plan.strategy,
        Strategy::CheckAndIncrement | Strategy::IncrementWithoutCheck
    );
    if first || all_met || !gated {
        let cap = plan.max_traffic_percentage.trunc();
        let candidate = candidate_share.min(cap).clamp(0.0, 100.0).trunc() as u32;
        let split = TrafficSplit::with_candidate(candidate);
        if split != d.status().split() || obs.routing.split.is_some_and(|o| o != split) {
            d.route(RoutingAction::SetSplit(split));
        }
        d.status_mut().traffic_split_percentage = Some(split);
    }
    d.status_mut().current_iteration += 1;
    d.status_mut().last_increment_time = Some(ctx.now);
    let text = format!("Iteration {} Started", d.status().current_iteration);
    d.set_message(Phase::Progressing, ITERATION_UPDATE, &text);
    let wait = abort_check_every(&plan, ctx).map_or(plan.interval, |e| e.min(plan.interval));
    Step::Decided(d.finish(Some(wait)))
}

/// A seed for the strategies' draws that is stable for an experiment (FNV-1a of
/// `namespace/name`), so a restarted controller draws what the first one would have.
fn experiment_seed(exp: &Experiment) -> u64 {
    let fnv = |h: u64, b: u8| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    // The bytes of `namespace/name`, hashed without building the string.
    let h = exp.namespace().bytes().fold(0xcbf2_9ce4_8422_2325, fnv);
    exp.name().bytes().fold(fnv(h, b'/'), fnv)
}

/// How often to check for an abort between boundaries, if at all.
fn abort_check_every(plan: &Settings, ctx: &Context) -> Option<Duration> {
    ctx.abort_check_every
        .filter(|_| plan.stops_on_failure && plan.strategy != Strategy::IncrementWithoutCheck)
}

/// The analysis over `[start, now]`, continuing from the status' last state.
fn analysis_request(
    exp: &Experiment,
    settings: &Settings,
    status: &ExperimentStatus,
    ctx: &Context,
) -> AnalysisRequest {
    let window = crate::measurement::Window {
        start: status.start_timestamp.unwrap_or(ctx.now),
        end: ctx.now,
    };
    // As `AnalysisRequest::new` from the plan, without building the rest of the plan.
    let (criteria, reward) = validation::criteria(exp, ctx.metrics);
    let (kind, namespace) = (exp.spec.target_service.kind(), exp.target_namespace());
    let tags = |version| std::sync::Arc::new(crate::plan::version_tags(&kind, namespace, version));
    AnalysisRequest {
        baseline: tags(settings.baseline),
        candidate: tags(settings.candidate),
        strategy: settings.strategy.clone(),
        window,
        criteria,
        step_size: settings.step_size,
        max_traffic_percentage: settings.max_traffic_percentage,
        confidence: settings.confidence,
        last_state: exp.status.analysis_state.clone(),
        analytics_service: exp.spec.analytics_service().to_string(),
        seed: experiment_seed(exp),
        reward,
    }
}

/// The status to write when a routing action of `decision` failed: nothing of the decision is
/// reported; the experiment pauses with `RoutingRulesError` and retries.
pub fn routing_failed(exp: &Experiment, error: &str, ctx: &Context) -> Decision {
    let mut d = Draft::new(exp, ctx.now);
    d.pause(
        ROUTING_RULES_ERROR,
        error,
        Some(ConditionType::RoutingRulesReady),
    );
    d.finish(Some(RETRY_AFTER))
}

fn analytics_failed(mut d: Draft, error: &str) -> Decision {
    d.pause(
        ANALYTICS_SERVICE_ERROR,
        error,
        Some(ConditionType::AnalyticsServiceNormal),
    );
    d.finish(Some(RETRY_AFTER))
}

fn winner_of(split: TrafficSplit) -> Winner {
    match (split.baseline, split.candidate) {
        (_, 0) => Winner::Baseline,
        (0, _) => Winner::Candidate,
        _ => Winner::Both,
    }
}

/// Ends the experiment: final split, stable routing, cleanup, message and conditions.
fn complete(
    mut d: Draft,
    plan: &Settings,
    ctx: &Context,
    succeeded: bool,
    text: &str,
    forced_winner: Option<Winner>,
) -> Decision {
    let started = d.status().start_timestamp.is_some();
    let winner = match (succeeded, forced_winner) {
        (_, Some(w)) => w,
        (false, None) => Winner::Baseline,
        (true, None) => match plan.on_success {
            OnSuccess::Baseline => Winner::Baseline,
            OnSuccess::Both => Winner::Both,
            _ => Winner::Candidate,
        },
    };
    let split = match winner {
        Winner::Baseline => TrafficSplit::ALL_BASELINE,
        Winner::Candidate => TrafficSplit::ALL_CANDIDATE,
        Winner::Both => d.status().split(),
    };
    if started {
        d.route(RoutingAction::Finalize { winner, split });
        if plan.cleanup {
            match winner {
                Winner::Baseline => d
                    .actions
                    .push(Action::DeleteTarget(plan.candidate.to_string())),
                Winner::Candidate if forced_winner.is_none() => d
                    .actions
                    .push(Action::DeleteTarget(plan.baseline.to_string())),
                _ => {}
            }
        }
    }
    d.status_mut().traffic_split_percentage = Some(split);
    d.status_mut().end_timestamp = Some(ctx.now);
    if let Some(start) = d.status().start_timestamp {
        d.status_mut().grafana_url = ctx.dashboard.url(d.exp, start, Some(ctx.now));
    }
    let reason = if succeeded {
        EXPERIMENT_SUCCEEDED
    } else {
        EXPERIMENT_FAILED
    };
    d.set_message(Phase::Completed, reason, text);
    d.condition(ConditionType::ExperimentCompleted, true, reason, text);
    d.condition(ConditionType::ExperimentSucceeded, succeeded, reason, text);
    d.finish(None)
}
