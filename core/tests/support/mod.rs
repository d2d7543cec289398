//! Shared test helpers: readings, plans and a virtual-time run loop over the pure engine.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use iter8_core::action::{Action, RoutingAction};
use iter8_core::analytics::{self, AnalysisRequest};
use iter8_core::engine::{self, Context, Decision, Step};
use iter8_core::manifest::parse_experiments;
use iter8_core::metrics_config::{EXTENDED_TELEMETRY_V2, MetricsConfig};
use iter8_core::observation::{Observations, RoutingObservation, Targets};
use iter8_core::{
    Experiment, ExperimentStatus, Measurement, MetricError, MetricErrorKind, MetricReadings,
    TrafficSplit, VersionReading,
};
use iter8_rand::ChaCha;

/// A fixed start time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

/// The tutorial's extended metrics configuration.
pub fn metrics() -> MetricsConfig {
    MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap()
}

/// A reading with a value and a sample size.
pub fn v(value: f64, sample: f64) -> VersionReading {
    VersionReading {
        value: Measurement::from_f64(value),
        sample_size: Measurement::Value(sample),
    }
}

/// A reading with no series.
pub fn no_data() -> VersionReading {
    VersionReading {
        value: Measurement::NoData,
        sample_size: Measurement::NoData,
    }
}

/// A reading whose backend failed.
pub fn failed() -> VersionReading {
    let e = Measurement::Error(MetricError::new(
        MetricErrorKind::Unreachable,
        "connection refused",
    ));
    VersionReading {
        value: e.clone(),
        sample_size: e,
    }
}

/// Readings for one metric.
pub fn readings(
    metric: &str,
    baseline: VersionReading,
    candidate: VersionReading,
) -> MetricReadings {
    MetricReadings {
        metric: metric.into(),
        baseline,
        candidate,
    }
}

/// Reads one experiment from YAML.
pub fn experiment(yaml: &str) -> Experiment {
    parse_experiments(yaml).unwrap()[0]
        .clone()
        .unwrap()
        .experiment
}

/// Reads a tutorial experiment from examples/bookinfo.
pub fn tutorial(file: &str) -> Experiment {
    let path = format!("{}/../examples/bookinfo/{file}", env!("CARGO_MANIFEST_DIR"));
    experiment(&std::fs::read_to_string(path).unwrap())
}

/// An experiment with the given criteria block (YAML list under successCriteria).
pub fn with(traffic: &str, criteria: &str) -> Experiment {
    experiment(&format!(
        "apiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: exp\n  namespace: ns\nspec:\n  targetService:\n    name: svc\n    baseline: svc-v1\n    candidate: svc-v2\n  trafficControl:\n{traffic}\n  analysis:\n    successCriteria:\n{criteria}\n"
    ))
}

/// Readings for the n-th analysis (None: the analytics call fails as a whole).
pub type ReadingsFn<'a> =
    Box<dyn FnMut(usize, &AnalysisRequest) -> Option<Vec<MetricReadings>> + 'a>;

/// What the world does in a run: targets, and readings for each analysis.
pub struct World<'a> {
    /// Targets at each reconcile (index = reconcile number).
    pub targets: Box<dyn FnMut(usize) -> Targets + 'a>,
    /// Readings for the n-th analysis (None: the analytics call fails as a whole).
    pub readings: ReadingsFn<'a>,
}

impl<'a> World<'a> {
    /// All targets present; readings from `f`.
    pub fn present(
        f: impl FnMut(usize, &AnalysisRequest) -> Option<Vec<MetricReadings>> + 'a,
    ) -> Self {
        World {
            targets: Box::new(|_| Targets::all_present()),
            readings: Box::new(f),
        }
    }
}

/// One recorded reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub now: DateTime<Utc>,
    pub decision: Decision,
    pub routed: TrafficSplit,
    pub analyzed: bool,
}

/// The state of a run, resumable from any point.
#[derive(Debug, Clone)]
pub struct Run {
    pub exp: Experiment,
    pub now: DateTime<Utc>,
    pub routed: Option<TrafficSplit>,
    pub reconciles: usize,
    pub analyses: usize,
    pub records: Vec<Record>,
    /// Fast-abort checks between boundaries.
    pub abort_check_every: Option<std::time::Duration>,
    /// Another experiment holding the routing rules, as routing observes it.
    pub held_by: Option<String>,
    /// The experiment was deleted and its finalizer removed: it no longer exists.
    pub gone: bool,
}

impl Run {
    pub fn new(exp: Experiment) -> Self {
        Run {
            exp,
            now: t0(),
            routed: None,
            reconciles: 0,
            analyses: 0,
            records: Vec::new(),
            abort_check_every: None,
            held_by: None,
            gone: false,
        }
    }

    /// One reconcile, applying routing and finalizer actions to the in-memory world.
    pub fn step(&mut self, world: &mut World, metrics: &MetricsConfig) {
        let mut ctx = Context::new(metrics, self.now);
        ctx.abort_check_every = self.abort_check_every;
        let obs = Observations {
            targets: (world.targets)(self.reconciles),
            routing: RoutingObservation {
                split: self.routed,
                held_by: self.held_by.clone(),
                ..Default::default()
            },
        };
        let mut analyzed = false;
        let decision = match engine::reconcile(&self.exp, &obs, &ctx) {
            Step::Decided(d) => d,
            Step::Analyze(pending) => {
                analyzed = true;
                let req = pending.request();
                let outcome = match (world.readings)(self.analyses, req) {
                    Some(r) => analytics::analyze(req, &r, &ChaCha),
                    None => Err(analytics::AnalyticsError::Service("down".into())),
                };
                self.analyses += 1;
                pending.resume(outcome)
            }
        };
        for a in &decision.actions {
            match a {
                Action::AddFinalizer => self
                    .exp
                    .metadata
                    .finalizers
                    .push(iter8_core::FINALIZER.to_string()),
                Action::RemoveFinalizer => {
                    self.exp.metadata.finalizers.clear();
                    self.gone = self.exp.is_being_deleted();
                }
                Action::Route(RoutingAction::Initialize) => {
                    self.routed = Some(TrafficSplit::ALL_BASELINE)
                }
                Action::Route(RoutingAction::SetSplit(s)) => self.routed = Some(*s),
                Action::Route(RoutingAction::Finalize { split, .. }) => self.routed = Some(*split),
                Action::DeleteTarget(_) => {}
            }
        }
        self.exp.status = decision.status.clone();
        self.reconciles += 1;
        self.records.push(Record {
            now: self.now,
            decision: decision.clone(),
            routed: self.routed.unwrap_or_default(),
            analyzed,
        });
        let wait = decision
            .requeue_after
            .unwrap_or(std::time::Duration::from_secs(30));
        self.now += chrono::TimeDelta::from_std(wait).unwrap();
    }

    /// Steps until completed or `max_steps`.
    pub fn run(mut self, world: &mut World, metrics: &MetricsConfig, max_steps: usize) -> Self {
        while !self.exp.status.is_completed() && !self.gone && self.reconciles < max_steps {
            self.step(world, metrics);
        }
        self
    }

    /// The statuses written, in order.
    pub fn statuses(&self) -> Vec<ExperimentStatus> {
        self.records
            .iter()
            .map(|r| r.decision.status.clone())
            .collect()
    }

    /// The final message.
    pub fn message(&self) -> String {
        self.exp.status.message.clone().unwrap_or_default()
    }
}

/// Readings that meet the tutorial's criteria (baseline and candidate alike fast and healthy).
pub fn good(_: usize, req: &AnalysisRequest) -> Option<Vec<MetricReadings>> {
    let n = req.window.interval_secs() as f64;
    Some(
        req.criteria
            .iter()
            .map(|c| readings(&c.metric.name, v(5.0, n), v(6.0, n / 2.0)))
            .collect(),
    )
}

/// Tutorial part 1's experiment at iteration 2 (candidate 40), its next iteration due.
pub fn started() -> Experiment {
    let mut w = World::present(good);
    let mut run = Run::new(tutorial("canary_reviews-v2_to_reviews-v3.yaml"));
    run.step(&mut w, &metrics());
    run.step(&mut w, &metrics());
    assert_eq!(run.exp.status.current_iteration, 2);
    assert!(run.exp.status.split().candidate > 0, "{:?}", run.exp.status);
    run.exp
}
