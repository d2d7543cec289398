//! Drives experiments in real time with the core's `reconcile_once` over the live stack: the
//! stack locates targets and routes through Envoy, Prometheus feeds the built-in analytics, and
//! experiments live in memory. Prints the `kubectl get experiments` table whenever it changes
//! and records, for every split the engine applied, what Envoy actually served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use iter8_core::action::{Action, RoutingAction, Winner};
use iter8_core::driver::{BuiltinAnalytics, Ports, reconcile_once};
use iter8_core::engine::Context;
use iter8_core::metrics_config::MetricsConfig;
use iter8_core::model::{Experiment, TrafficSplit};
use iter8_core::table;
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource, RetryPolicy};
use iter8_rand::ChaCha;

use crate::LiveError;
use crate::memory::{MemoryEvents, MemoryStore};
use crate::stack::LiveStack;
use iter8_envoy::stats::{CounterSnapshot, served_between};

/// Where the driver's output goes.
pub type Printer<'a> = Box<dyn FnMut(&str) + Send + 'a>;

/// How the driver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverOptions {
    /// Fast abort: check `stopOnFailure` criteria this often between iterations.
    pub abort_check_every: Option<Duration>,
    /// Never sleep longer than this between reconciles (caps the core's 30 s retry).
    pub max_sleep: Duration,
    /// Pause after a reconcile that failed (e.g. Envoy's admin API unreachable).
    pub error_retry: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            abort_check_every: Some(Duration::from_secs(5)),
            max_sleep: Duration::from_secs(5),
            error_retry: Duration::from_secs(1),
        }
    }
}

/// One split the engine applied, and what Envoy served while it was in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// The split applied.
    pub split: TrafficSplit,
    /// When Envoy confirmed it, since the run started.
    pub at: Duration,
    /// How long it stayed in place.
    pub lasted: Duration,
    /// Requests Envoy sent to the baseline meanwhile (`None`: statistics unavailable).
    pub baseline_requests: Option<u64>,
    /// Requests Envoy sent to the candidate meanwhile.
    pub candidate_requests: Option<u64>,
}

impl StepRecord {
    /// The candidate's share of what Envoy served, in percent (`None` without requests).
    pub fn served_candidate_percent(&self) -> Option<f64> {
        let (b, c) = (self.baseline_requests?, self.candidate_requests?);
        (b + c > 0).then(|| 100.0 * c as f64 / (b + c) as f64)
    }

    /// Requests served to both versions meanwhile.
    pub fn requests(&self) -> u64 {
        self.baseline_requests.unwrap_or(0) + self.candidate_requests.unwrap_or(0)
    }
}

/// What happened to one experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The experiment as it ended.
    pub experiment: Experiment,
    /// Every split applied, with what Envoy served (the last one, still in place, excluded).
    pub steps: Vec<StepRecord>,
    /// When the candidate's weight went to 0 on a rollback (Envoy confirmed).
    pub rollback_at: Option<Instant>,
    /// The distinct status messages, in order.
    pub messages: Vec<String>,
    /// How long the run took.
    pub took: Duration,
}

/// The split a routing action puts in place.
fn split_of(action: &RoutingAction) -> TrafficSplit {
    match *action {
        RoutingAction::Initialize => TrafficSplit::ALL_BASELINE,
        RoutingAction::SetSplit(s) => s,
        RoutingAction::Finalize { winner, split } => match winner {
            Winner::Baseline => TrafficSplit::ALL_BASELINE,
            Winner::Candidate => TrafficSplit::ALL_CANDIDATE,
            Winner::Both => split,
        },
    }
}

struct OpenStep {
    split: TrafficSplit,
    since: Instant,
    counters: Option<CounterSnapshot>,
}

/// Runs experiments over a [`LiveStack`].
pub struct LiveDriver<'a> {
    stack: &'a LiveStack,
    store: Arc<MemoryStore>,
    events: MemoryEvents,
    analytics: BuiltinAnalytics<PrometheusSource>,
    metrics: MetricsConfig,
    options: DriverOptions,
    print: Printer<'a>,
    last_table: String,
    last_warning: String,
    started: Instant,
}

impl<'a> LiveDriver<'a> {
    /// A driver measuring with `metrics` through the stack's Prometheus.
    pub fn new(
        stack: &'a LiveStack,
        metrics: MetricsConfig,
        options: DriverOptions,
        print: Printer<'a>,
    ) -> Result<Self, LiveError> {
        let settings = PrometheusSettings::new(stack.prometheus_url())
            .with_timeout(Duration::from_secs(2))
            .with_retry(RetryPolicy {
                max_retries: 1,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(100),
            });
        let client = PrometheusClient::new(&settings)
            .map_err(|e| LiveError::Setup(format!("Prometheus client: {e}")))?;
        Ok(LiveDriver {
            stack,
            store: Arc::new(MemoryStore::default()),
            events: MemoryEvents::default(),
            analytics: BuiltinAnalytics::new(PrometheusSource::new(client), ChaCha),
            metrics,
            options,
            print,
            last_table: String::new(),
            last_warning: String::new(),
            started: Instant::now(),
        })
    }

    /// The experiments (shared: readable while an experiment runs).
    pub fn store(&self) -> Arc<MemoryStore> {
        Arc::clone(&self.store)
    }

    /// The events recorded.
    pub fn events(&self) -> &MemoryEvents {
        &self.events
    }

    /// Prints a line.
    pub fn say(&mut self, text: &str) {
        (self.print)(&format!("{text}\n"));
    }

    /// Adds an experiment (as `kubectl apply` would).
    pub fn apply(&mut self, experiment: Experiment) {
        let name = experiment.name().to_string();
        self.store.apply(experiment);
        self.say(&format!("experiment.iter8.tools/{name} created"));
    }

    /// Prints the table if it changed since last printed.
    pub fn print_table(&mut self) {
        let text = table::render(&self.store.all());
        if text != self.last_table {
            let header = format!(
                "\n[{:>6.1}s] $ kubectl get experiments -n {}\n",
                self.started.elapsed().as_secs_f64(),
                self.stack_namespace()
            );
            (self.print)(&header);
            (self.print)(&text);
            self.last_table = text;
        }
    }

    fn stack_namespace(&self) -> String {
        self.store
            .all()
            .first()
            .map(|e| e.namespace().to_string())
            .unwrap_or_default()
    }

    fn ports(&self) -> Ports<'_> {
        Ports {
            targets: self.stack,
            router: self.stack.router(),
            analytics: &self.analytics,
            store: &*self.store,
            events: &self.events,
        }
    }

    /// One reconcile of `name` now; prints the table if it changed.
    pub async fn reconcile(
        &mut self,
        name: &str,
    ) -> Result<iter8_core::engine::Decision, LiveError> {
        let exp = self
            .store
            .get(name)
            .ok_or_else(|| LiveError::Setup(format!("no experiment {name}")))?;
        let mut ctx = Context::new(&self.metrics, Utc::now());
        ctx.abort_check_every = self.options.abort_check_every;
        let result = reconcile_once(&exp, &self.ports(), &ctx).await;
        match result {
            Ok(decision) => {
                self.last_warning.clear();
                self.print_table();
                Ok(decision)
            }
            Err(e) => {
                let text = format!("  ! reconcile of {name} failed: {e} (retrying)");
                if text != self.last_warning {
                    self.say(&text);
                    self.last_warning = text;
                }
                Err(LiveError::Setup(e.to_string()))
            }
        }
    }

    async fn counters(&self) -> Option<CounterSnapshot> {
        self.stack.admin().cluster_counters().await.ok()
    }

    /// Reconciles `name` until it completes (or `limit` passes), sleeping as the core asks.
    pub async fn run_to_completion(
        &mut self,
        name: &str,
        limit: Duration,
    ) -> Result<RunRecord, LiveError> {
        let began = Instant::now();
        let mut steps = Vec::new();
        let mut open: Option<OpenStep> = None;
        let mut rollback_at = None;
        let mut messages: Vec<String> = Vec::new();
        loop {
            let wait = match self.reconcile(name).await {
                Ok(decision) => {
                    let routing_failed = decision
                        .status
                        .message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("RoutingRulesError"));
                    if let Some(message) = &decision.status.message
                        && messages.last() != Some(message)
                    {
                        messages.push(message.clone());
                    }
                    let applied = decision.actions.iter().rev().find_map(|a| match a {
                        Action::Route(r) => Some(*r),
                        _ => None,
                    });
                    if let Some(action) = applied.filter(|_| !routing_failed) {
                        let now = Instant::now();
                        let counters = self.counters().await;
                        if let Some(step) = open.take() {
                            steps.push(self.close(name, step, now, counters.as_ref()));
                        }
                        let split = split_of(&action);
                        if split.candidate == 0 && matches!(action, RoutingAction::Finalize { .. })
                        {
                            rollback_at = Some(now);
                        }
                        open = Some(OpenStep {
                            split,
                            since: now,
                            counters,
                        });
                    }
                    if decision.status.is_completed() {
                        let experiment = self.store.get(name).unwrap_or_default();
                        return Ok(RunRecord {
                            experiment,
                            steps,
                            rollback_at,
                            messages,
                            took: began.elapsed(),
                        });
                    }
                    decision
                        .requeue_after
                        .unwrap_or(self.options.max_sleep)
                        .min(self.options.max_sleep)
                }
                Err(_) => self.options.error_retry,
            };
            if began.elapsed() >= limit {
                return Err(LiveError::Timeout {
                    name: name.to_string(),
                    secs: limit.as_secs(),
                    status: self
                        .store
                        .get(name)
                        .and_then(|e| e.status.message)
                        .unwrap_or_default(),
                });
            }
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
    }

    fn close(
        &self,
        name: &str,
        step: OpenStep,
        now: Instant,
        counters: Option<&CounterSnapshot>,
    ) -> StepRecord {
        let exp = self.store.get(name).unwrap_or_default();
        let t = &exp.spec.target_service;
        let served = match (&step.counters, counters) {
            (Some(before), Some(after)) => Some(served_between(before, after)),
            _ => None,
        };
        let count = |version: &str| {
            served
                .as_ref()
                .map(|s| s.get(version).map_or(0, |c| c.requests))
        };
        StepRecord {
            split: step.split,
            at: step.since.saturating_duration_since(self.started),
            lasted: now.saturating_duration_since(step.since),
            baseline_requests: count(t.baseline()),
            candidate_requests: count(t.candidate()),
        }
    }
}

/// A line per step: the split applied and what Envoy served.
pub fn describe_steps(record: &RunRecord) -> String {
    let mut out = String::new();
    for s in &record.steps {
        let served = match s.served_candidate_percent() {
            Some(c) => format!(
                "Envoy served {:.1}/{:.1} of {} requests",
                100.0 - c,
                c,
                s.requests()
            ),
            None => "Envoy's statistics were unavailable".to_string(),
        };
        out.push_str(&format!(
            "  split {:>3}/{:<3} for {:>5.1}s: {served}\n",
            s.split.baseline,
            s.split.candidate,
            s.lasted.as_secs_f64()
        ));
    }
    out
}
