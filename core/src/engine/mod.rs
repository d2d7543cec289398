//! The traffic state machine: a pure function from (experiment, observations, now) to the new
//! status, the actions to perform and when to be woken next.
//!
//! The contract with a driver (see [`crate::driver`]):
//! 1. observe targets and routing, call [`reconcile`];
//! 2. on [`Step::Analyze`], run the analysis [`Pending::request`] describes and hand its outcome
//!    to [`Pending::resume`], which returns the decision (a `Pending` is the only way to go on,
//!    so an analysis is asked for at most once per reconcile);
//! 3. with the [`Decision`], perform the actions in order; if a routing action fails, write
//!    [`routing_failed`]'s status instead of the decision's (so a split that was not applied is
//!    never reported); otherwise write the decision's status and record its events;
//! 4. reconcile again after `requeue_after`, or when a watched object changes.
//!
//! A reconcile goes through named steps, each of which may end it: deletion, a completed
//! experiment's routing, configuration (metrics and validation), user action, targets, routing,
//! and the iteration (analysis, traffic, completion).

mod draft;
pub mod messages;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::action::{Action, Event, RoutingAction, Winner};
use crate::analytics::{self, AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::measurement::Window;
use crate::metrics_config::MetricsConfig;
use crate::model::{
    ConditionType, Experiment, ExperimentStatus, OnSuccess, Phase, Strategy, TrafficSplit,
    UserAction,
};
use crate::observation::{Observations, RoutingObservation, Targets};
use crate::plan::Plan;
use crate::ports::DashboardLink;
use crate::validation;
use draft::Draft;
use messages::*;

/// How soon to retry after a failing dependency (never later than the interval).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How many failed attempts of a dependency in a row end a running experiment (rolled back,
/// `ExperimentFailed`), as Argo Rollouts' `consecutiveErrorLimit`.
pub const DEFAULT_FAILURE_LIMIT: u32 = 4;

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
    /// The failure budget: this many failed analyses or routing changes in a row end the
    /// experiment with a rollback; fewer hold traffic where it is.
    pub failure_limit: u32,
    /// The namespace boundary: unless set, an experiment's targets must be in its own
    /// namespace (`spec.targetService.namespace`), or it pauses with a `ValidationError`.
    pub allow_cross_namespace: bool,
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
            failure_limit: DEFAULT_FAILURE_LIMIT,
            allow_cross_namespace: false,
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

/// What a reconcile comes to: a decision, or an analysis to run first.
#[derive(Debug)]
#[must_use = "a decision to carry out, or an analysis to run and resume with"]
#[allow(clippy::large_enum_variant)] // made once per reconcile and taken apart at once
pub enum Step<'a> {
    /// The decision.
    Decided(Decision),
    /// Run [`Pending::request`] and hand its outcome to [`Pending::resume`].
    Analyze(Pending<'a>),
}

/// A reconcile waiting for an analysis: the decision so far and the request to run.
#[must_use = "run `request()` and hand its outcome to `resume` to get the decision"]
pub struct Pending<'a> {
    run: Running<'a>,
    request: AnalysisRequest,
    purpose: Purpose,
}

/// Why an analysis is asked for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// The iteration is due: the outcome moves traffic (or ends the experiment).
    Iteration,
    /// A fast-abort check between boundaries: only an abort counts; otherwise wait this long.
    AbortCheck { wait: Duration },
}

impl Pending<'_> {
    /// The analysis to run.
    pub fn request(&self) -> &AnalysisRequest {
        &self.request
    }

    /// Finishes the reconcile with the analysis' outcome.
    pub fn resume(self, outcome: Result<AnalysisOutcome, AnalyticsError>) -> Decision {
        match self.purpose {
            Purpose::Iteration => self.run.iterate(outcome),
            Purpose::AbortCheck { wait } => self.run.check_abort(outcome, wait),
        }
    }
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("request", &self.request)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// Decides what to do for an experiment now.
pub fn reconcile<'a>(exp: &'a Experiment, obs: &Observations, ctx: &'a Context<'a>) -> Step<'a> {
    let mut d = Draft::new(exp, ctx.now);
    if exp.is_being_deleted() {
        let skipped = deletion(&mut d, obs);
        let mut decision = d.finish(None);
        decision.events.extend(skipped);
        return Step::Decided(decision);
    }
    if !exp.has_finalizer() {
        d.actions.push(Action::AddFinalizer);
    }
    if exp.status.is_completed() {
        let wait = keep_final_routing(&mut d, &obs.routing);
        return Step::Decided(d.finish(wait));
    }
    let plan = match configuration(&mut d, ctx) {
        Ok(plan) => plan,
        Err(wait) => return Step::Decided(d.finish(wait)),
    };
    let mut run = Running {
        d,
        plan,
        ctx,
        observed: obs.routing.split,
    };
    let ending = run
        .user_action(&obs.targets)
        .or_else(|| run.targets(&obs.targets, &obs.routing))
        .or_else(|| run.routing(&obs.routing))
        .or_else(|| run.failure_budget());
    match ending {
        Some(ending) => Step::Decided(run.end(ending)),
        None => run.iteration(),
    }
}

/// How a step ends a reconcile early.
enum Ending {
    /// Decided for now; reconcile again after this long (`None`: only when something changes).
    Wait(Option<Duration>),
    /// The experiment ends.
    Complete(Completion),
}

/// How an experiment ends.
#[derive(Debug, Clone)]
enum Completion {
    /// Success with this text: traffic goes where `onSuccess` says.
    Succeeded(&'static str),
    /// Failure with this text: traffic goes back to the baseline.
    Failed(String),
    /// The baseline was deleted: the candidate keeps all traffic and nothing is cleaned up.
    BaselineDeleted,
}

/// One of the experiment's targets.
#[derive(Debug, Clone, Copy)]
enum Target {
    Service,
    Baseline,
    Candidate,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Service => "Service",
            Target::Baseline => "Baseline",
            Target::Candidate => "Candidate",
        })
    }
}

/// Deletion: roll a running experiment's traffic back, then let the experiment go. When the
/// rollback is moot (the baseline, or iter8's routing rules, are gone: with its namespace,
/// say), the experiment goes at once, with a Warning event saying what was skipped, so that a
/// deletion never waits for something that cannot happen.
fn deletion(d: &mut Draft, obs: &Observations) -> Option<Event> {
    if !d.exp.has_finalizer() {
        return None;
    }
    let mut skipped = None;
    if d.status.start_timestamp.is_some() && !d.status.is_completed() {
        let ours = obs.routing.held_by.is_none() && obs.routing.split.is_some();
        if obs.targets.baseline && ours {
            d.route(RoutingAction::Finalize {
                winner: Winner::Baseline,
                split: TrafficSplit::ALL_BASELINE,
            });
            d.status.traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
        } else {
            let gone = if obs.targets.baseline {
                "the routing rules are gone"
            } else {
                "the baseline is gone"
            };
            skipped = Some(Event {
                type_: crate::action::EventType::Warning,
                reason: ROLLBACK_SKIPPED.to_string(),
                message: format!("no rollback to the baseline on deletion: {gone}"),
            });
        }
    }
    d.actions.push(Action::RemoveFinalizer);
    skipped
}

/// A completed experiment re-asserts its final routing until the observed routing says so
/// (checking again after [`RETRY_AFTER`] each time it had to).
fn keep_final_routing(d: &mut Draft, routing: &RoutingObservation) -> Option<Duration> {
    let split = d.status.split();
    if routing.held_by.is_none() && routing.split.is_some_and(|observed| observed != split) {
        d.route(RoutingAction::Finalize {
            winner: winner_of(split),
            split,
        });
        return Some(RETRY_AFTER);
    }
    None
}

/// The metrics configuration and the spec: the plan to run, or how long to wait when there is
/// none.
fn configuration(d: &mut Draft, ctx: &Context) -> Result<Plan, Option<Duration>> {
    if let Some(err) = &ctx.metrics_error {
        let text = format!("Fail to read metrics: {err}");
        d.pause(
            SYNC_METRICS_ERROR,
            &text,
            Some(ConditionType::MetricsSynced),
        );
        return Err(Some(RETRY_AFTER));
    }
    let outside = (!ctx.allow_cross_namespace && d.exp.target_namespace() != d.exp.namespace())
        .then(|| validation::Problem {
            severity: validation::Severity::Error,
            path: "spec.targetService.namespace".to_string(),
            rule: format!(
                "must be the experiment's own namespace {}, not {} (the operator runs without \
                 --allow-cross-namespace)",
                d.exp.namespace(),
                d.exp.target_namespace()
            ),
        });
    let planned = match (validation::plan(d.exp, ctx.metrics), outside) {
        (Ok(_), Some(problem)) => Err(vec![problem]),
        (Err(mut problems), Some(problem)) => {
            problems.insert(0, problem);
            Err(problems)
        }
        (planned, None) => planned,
    };
    let changed = d
        .status
        .started_target_service
        .as_ref()
        .is_some_and(|started| *started != d.exp.spec.target_service);
    let planned = match planned {
        Ok(_) if changed => Err(vec![validation::Problem {
            severity: validation::Severity::Error,
            path: "spec.targetService".to_string(),
            rule: "is immutable once the experiment has started; put the started one back"
                .to_string(),
        }]),
        planned => planned,
    };
    match planned {
        Ok(plan) => {
            d.condition(ConditionType::MetricsSynced, true, "", "");
            Ok(plan)
        }
        Err(problems) => {
            let text = problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            d.pause(VALIDATION_ERROR, &text, Some(ConditionType::MetricsSynced));
            Err(None)
        }
    }
}

/// A valid experiment being decided on.
struct Running<'a> {
    d: Draft<'a>,
    plan: Plan,
    ctx: &'a Context<'a>,
    /// The split routing serves now, if observed.
    observed: Option<TrafficSplit>,
}

impl<'a> Running<'a> {
    /// User actions: overrides end the experiment, pause holds it (unless a target of the
    /// started experiment was deleted: then the targets step ends it), resume lets it go on.
    fn user_action(&mut self, targets: &Targets) -> Option<Ending> {
        let target_deleted = self.d.status.start_timestamp.is_some()
            && !(targets.service && targets.baseline && targets.candidate);
        match &self.d.exp.action {
            Some(UserAction::OverrideSuccess) => {
                Some(Ending::Complete(Completion::Succeeded(ABORTED)))
            }
            Some(UserAction::OverrideFailure) => {
                Some(Ending::Complete(Completion::Failed(ABORTED.into())))
            }
            Some(UserAction::Pause) if !target_deleted => {
                self.d.set_message(Phase::Pause, PAUSE, "");
                Some(Ending::Wait(None))
            }
            Some(UserAction::Resume) if self.d.status.message.as_deref() == Some(PAUSE) => {
                self.d.set_message(Phase::Progressing, RESUME, "");
                None
            }
            _ => None,
        }
    }

    /// Targets: wait for missing ones before the start (with v0.2.1's `initializing` rules,
    /// all traffic to the baseline, once the Service and the baseline exist), end the
    /// experiment when one is deleted after it, wait while another experiment works on them.
    fn targets(&mut self, t: &Targets, routing: &RoutingObservation) -> Option<Ending> {
        let started = self.d.status.start_timestamp.is_some();
        let missing = [
            (t.service, Target::Service),
            (t.baseline, Target::Baseline),
            (t.candidate, Target::Candidate),
        ]
        .into_iter()
        .find_map(|(present, target)| (!present).then_some(target));
        if let Some(target) = missing {
            if !started {
                let text = format!("Missing {target}");
                self.d.pause(
                    TARGETS_NOT_FOUND,
                    &text,
                    Some(ConditionType::TargetsProvided),
                );
                self.d.status.traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
                if matches!(target, Target::Candidate) && initializing_rules_needed(t, routing) {
                    self.d.route(RoutingAction::Initialize);
                }
                return Some(Ending::Wait(None));
            }
            let text = format!("{target} Deleted");
            self.d.condition(
                ConditionType::TargetsProvided,
                false,
                TARGETS_NOT_FOUND,
                &text,
            );
            return Some(Ending::Complete(match target {
                Target::Baseline => Completion::BaselineDeleted,
                Target::Service | Target::Candidate => Completion::Failed(ABORTED.into()),
            }));
        }
        if let Some(other) = &t.claimed_by
            && !started
        {
            // v0.2.1's words: which target (Service, Baseline or Candidate) is shared.
            let text = t.claim_text(self.d.exp).unwrap_or_else(|| {
                format!(
                    "{} is being involved in other experiment",
                    self.plan.service
                )
            });
            self.d.pause(TARGETS_NOT_FOUND, &text, None);
            self.d.condition(
                ConditionType::TargetsProvided,
                false,
                TARGETS_NOT_FOUND,
                &format!("targets are used by running experiment {other}"),
            );
            self.d.status.traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
            return Some(Ending::Wait(None));
        }
        self.d
            .condition(ConditionType::TargetsProvided, true, "", "");
        None
    }

    /// Routing: wait while another experiment holds the rules; initialise them at the start.
    fn routing(&mut self, routing: &RoutingObservation) -> Option<Ending> {
        if let Some(other) = &routing.held_by {
            let text = format!(
                "routing rules of {} are held by experiment {other}",
                self.plan.service
            );
            self.d.pause(
                ROUTING_RULES_ERROR,
                &text,
                Some(ConditionType::RoutingRulesReady),
            );
            return Some(Ending::Wait(Some(RETRY_AFTER.min(self.plan.interval))));
        }
        if self.d.status.start_timestamp.is_none() {
            let now = self.ctx.now;
            self.d.status.start_timestamp = Some(now);
            self.d.status.started_target_service = Some(self.d.exp.spec.target_service.clone());
            self.d.status.traffic_split_percentage = Some(TrafficSplit::ALL_BASELINE);
            self.d.status.grafana_url = self.ctx.dashboard.url(self.d.exp, now, None);
            self.d.route(RoutingAction::Initialize);
        } else if let Some(gone) = drifted(routing) {
            let split = self.d.status.split();
            self.d.route(RoutingAction::SetSplit(split));
            self.observed = Some(split);
            let text = format!(
                "{gone} missing: put back with baseline {}, candidate {}",
                split.baseline, split.candidate
            );
            self.d.event(ROUTING_RULES_REPAIRED, &text);
        }
        self.d
            .condition(ConditionType::RoutingRulesReady, true, "", "");
        None
    }

    /// The failure budget: once [`Context::failure_limit`] attempts in a row have failed, the
    /// experiment ends with a rollback; the message says why. A rollback that fails counts
    /// again, so it is retried until it is applied.
    fn failure_budget(&mut self) -> Option<Ending> {
        let failures = self.d.status.consecutive_failures;
        if failures < self.ctx.failure_limit.max(1) {
            return None;
        }
        let last = self.d.status.message.as_deref().unwrap_or("no message");
        let text = format!("{failures} consecutive failed attempts; the last: {last}");
        Some(Ending::Complete(Completion::Failed(text)))
    }

    /// The iteration: at an interval boundary an analysis decides; between boundaries the
    /// experiment holds (and, with fast aborts, checks for one).
    fn iteration(self) -> Step<'a> {
        let status = &self.d.status;
        let until_due = match status.last_increment_time {
            Some(last) if status.current_iteration > 0 => {
                // A clock that went back counts as no time elapsed.
                let elapsed = (self.ctx.now - last).to_std().unwrap_or_default();
                self.plan
                    .interval
                    .checked_sub(elapsed)
                    .filter(|wait| !wait.is_zero())
            }
            _ => None,
        };
        match until_due {
            Some(wait) => self.between_boundaries(wait),
            None => self.at_boundary(),
        }
    }

    fn between_boundaries(mut self, wait: Duration) -> Step<'a> {
        let split = self.d.status.split();
        if self.observed.is_some_and(|observed| observed != split) {
            // Someone edited the weights by hand: put ours back.
            self.d.route(RoutingAction::SetSplit(split));
        }
        if self.d.status.phase != Some(Phase::Progressing) {
            // Back from a pause for a failing dependency: progressing again.
            let text = format!("Iteration {} Started", self.d.status.current_iteration);
            self.d
                .set_message(Phase::Progressing, ITERATION_UPDATE, &text);
        }
        match self.abort_check_every() {
            None => Step::Decided(self.d.finish(Some(wait))),
            Some(every) => {
                let request = self.request();
                Step::Analyze(Pending {
                    run: self,
                    request,
                    purpose: Purpose::AbortCheck {
                        wait: wait.min(every),
                    },
                })
            }
        }
    }

    fn at_boundary(self) -> Step<'a> {
        let request = self.request();
        if self.plan.strategy == Strategy::IncrementWithoutCheck {
            // Nothing to measure: decided at once.
            let outcome = analytics::increment_without_check(&request);
            return Step::Decided(self.iterate(outcome));
        }
        Step::Analyze(Pending {
            run: self,
            request,
            purpose: Purpose::Iteration,
        })
    }

    /// The analysis over `[start, now]`, continuing from the last state.
    fn request(&self) -> AnalysisRequest {
        let now = self.ctx.now;
        let window = Window {
            start: self.d.status.start_timestamp.unwrap_or(now),
            end: now,
        };
        AnalysisRequest::new(&self.plan, window, self.d.status.analysis_state.clone())
    }

    /// A fast-abort check's outcome. Only an abort counts: the outcome's state and split are
    /// ignored so that the boundary's change detection sees the data it would have seen
    /// without the check; errors are left to the boundary's analysis.
    fn check_abort(
        mut self,
        outcome: Result<AnalysisOutcome, AnalyticsError>,
        wait: Duration,
    ) -> Decision {
        match outcome {
            Ok(o) if o.assessment.abort_experiment => {
                self.d.status.assessment = Some(o.assessment);
                self.complete(Completion::Failed(ABORTED.into()))
            }
            _ => self.d.finish(Some(wait)),
        }
    }

    /// An iteration's outcome: abort, complete after the last iteration, or shift traffic and
    /// start the next iteration.
    fn iterate(mut self, outcome: Result<AnalysisOutcome, AnalyticsError>) -> Decision {
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.d.pause(
                    ANALYTICS_SERVICE_ERROR,
                    &e.to_string(),
                    Some(ConditionType::AnalyticsServiceNormal),
                );
                self.d.status.consecutive_failures =
                    self.d.status.consecutive_failures.saturating_add(1);
                if let Some(ending) = self.failure_budget() {
                    return self.end(ending);
                }
                return self.d.finish(Some(RETRY_AFTER));
            }
        };
        self.d.status.consecutive_failures = 0;
        self.d
            .condition(ConditionType::AnalyticsServiceNormal, true, "", "");
        let AnalysisOutcome {
            candidate_traffic_percentage: recommended,
            assessment,
            state,
        } = outcome;
        let (all_met, abort) = (
            assessment.all_success_criteria_met,
            assessment.abort_experiment,
        );
        let first = self.d.status.current_iteration == 0;
        self.d.status.analysis_state = Some(state);
        self.d.status.assessment = Some(assessment);

        if abort {
            return self.complete(Completion::Failed(ABORTED.into()));
        }
        if self.d.status.current_iteration >= self.plan.max_iterations {
            let completion = if self.plan.strategy == Strategy::IncrementWithoutCheck {
                // Nothing was checked, even when criteria are given (as v0.2.1).
                Completion::Succeeded(LAST_ITERATION_COMPLETED)
            } else if all_met {
                Completion::Succeeded(ALL_CRITERIA_MET)
            } else {
                Completion::Failed(NOT_ALL_CRITERIA_MET.into())
            };
            return self.complete(completion);
        }
        // As v0.2.1 for every strategy: after the first iteration a recommendation is applied
        // only when every success criterion is met; its events say whether traffic moved
        // (IterationSucceeded) or a criterion failed (IterationFailed).
        if first || all_met {
            let before = self.d.status.split();
            let after = self.shift_traffic(recommended);
            if after != before {
                let text = format!(
                    "New Traffic, baseline: {}, candidate: {}",
                    after.baseline, after.candidate
                );
                self.d.event(ITERATION_SUCCEEDED, &text);
            }
        } else {
            let text = self
                .d
                .status
                .assessment
                .as_ref()
                .map(unmet_criteria)
                .unwrap_or_default();
            self.d.event(ITERATION_FAILED, &text);
        }
        self.d.status.current_iteration += 1;
        self.d.status.last_increment_time = Some(self.ctx.now);
        let text = format!("Iteration {} Started", self.d.status.current_iteration);
        self.d
            .set_message(Phase::Progressing, ITERATION_UPDATE, &text);
        let interval = self.plan.interval;
        let wait = self
            .abort_check_every()
            .map_or(interval, |every| every.min(interval));
        self.d.finish(Some(wait))
    }

    /// Routes the recommended candidate share: ignored above `maxTrafficPercentage` (as v0.2.1,
    /// not clamped), otherwise truncated to a whole percentage as v0.2.1 does. Returns the
    /// split the status now shows.
    fn shift_traffic(&mut self, recommended: f64) -> TrafficSplit {
        if recommended.is_nan() || recommended > self.plan.max_traffic_percentage {
            return self.d.status.split();
        }
        let split = TrafficSplit::with_candidate(recommended.max(0.0).trunc() as u32);
        if split != self.d.status.split() || self.observed.is_some_and(|o| o != split) {
            self.d.route(RoutingAction::SetSplit(split));
        }
        self.d.status.traffic_split_percentage = Some(split);
        split
    }

    /// How often to check for an abort between boundaries, if at all.
    fn abort_check_every(&self) -> Option<Duration> {
        self.ctx.abort_check_every.filter(|_| {
            self.plan.stops_on_failure() && self.plan.strategy != Strategy::IncrementWithoutCheck
        })
    }

    fn end(self, ending: Ending) -> Decision {
        match ending {
            Ending::Wait(wait) => self.d.finish(wait),
            Ending::Complete(completion) => self.complete(completion),
        }
    }

    /// Ends the experiment: final split, stable routing, cleanup, message and conditions.
    fn complete(self, completion: Completion) -> Decision {
        let Running {
            mut d, plan, ctx, ..
        } = self;
        let (succeeded, text) = match &completion {
            Completion::Succeeded(text) => (true, *text),
            Completion::Failed(text) => (false, text.as_str()),
            Completion::BaselineDeleted => (true, ABORTED),
        };
        let winner = match &completion {
            Completion::Succeeded(_) => match plan.on_success {
                OnSuccess::Baseline => Winner::Baseline,
                OnSuccess::Both => Winner::Both,
                _ => Winner::Candidate,
            },
            Completion::Failed(_) => Winner::Baseline,
            Completion::BaselineDeleted => Winner::Candidate,
        };
        let split = match winner {
            Winner::Baseline => TrafficSplit::ALL_BASELINE,
            Winner::Candidate => TrafficSplit::ALL_CANDIDATE,
            Winner::Both => d.status.split(),
        };
        if d.status.start_timestamp.is_some() {
            d.route(RoutingAction::Finalize { winner, split });
            let loser = match (winner, &completion) {
                (Winner::Baseline, _) => Some(&plan.candidate),
                (Winner::Candidate, Completion::Succeeded(_)) => Some(&plan.baseline),
                _ => None,
            };
            if let Some(loser) = loser.filter(|_| plan.cleanup) {
                d.actions.push(Action::DeleteTarget(loser.clone()));
            }
        }
        d.status.traffic_split_percentage = Some(split);
        d.status.end_timestamp = Some(ctx.now);
        if let Some(start) = d.status.start_timestamp {
            d.status.grafana_url = ctx.dashboard.url(d.exp, start, Some(ctx.now));
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
}

/// The status to write when a routing action of `decision` failed: nothing of the decision is
/// reported; the experiment pauses with `RoutingRulesError`, counts the failure against its
/// budget and retries. A completed experiment stays completed (its final routing is retried
/// until it is observed); the failure shows in its `RoutingRulesReady` condition.
pub fn routing_failed(exp: &Experiment, error: &str, ctx: &Context) -> Decision {
    let mut d = Draft::new(exp, ctx.now);
    if exp.status.is_completed() {
        d.condition(
            ConditionType::RoutingRulesReady,
            false,
            ROUTING_RULES_ERROR,
            error,
        );
        return d.finish(Some(RETRY_AFTER));
    }
    d.pause(
        ROUTING_RULES_ERROR,
        error,
        Some(ConditionType::RoutingRulesReady),
    );
    d.status.consecutive_failures = d.status.consecutive_failures.saturating_add(1);
    d.finish(Some(RETRY_AFTER))
}

/// Whether an experiment waiting for its candidate (the Service and the baseline exist) should
/// have v0.2.1's `initializing` rules (all traffic to the baseline) applied: unless another
/// experiment claims its targets or holds the rules, or this experiment's rules already serve
/// the baseline alone and nothing of them is missing.
fn initializing_rules_needed(t: &Targets, routing: &RoutingObservation) -> bool {
    t.service
        && t.baseline
        && t.claimed_by.is_none()
        && routing.held_by.is_none()
        && (routing.split != Some(TrafficSplit::ALL_BASELINE) || !routing.missing.is_empty())
}

/// What of a started experiment's routing objects the router found missing, when nobody else
/// holds the host: they are put back. (A router that observes nothing reports nothing missing.)
fn drifted(routing: &RoutingObservation) -> Option<String> {
    (routing.held_by.is_none() && !routing.missing.is_empty()).then(|| routing.missing.join(", "))
}

fn winner_of(split: TrafficSplit) -> Winner {
    match (split.baseline, split.candidate) {
        (_, 0) => Winner::Baseline,
        (0, _) => Winner::Candidate,
        _ => Winner::Both,
    }
}
