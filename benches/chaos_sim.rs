//! The chaos run in the simulation: many experiments (100 by default) driven through
//! `iter8_core::driver::reconcile_once` over the simulated cluster, on a virtual clock, while
//! seeded random faults hit them: API errors on every port call, writes that land but time out,
//! Prometheus outages and garbage answers, the operator killed mid-reconcile and restarted
//! from the stored statuses, and candidate Deployments deleted mid-run. After a fault-free
//! drain it checks the invariants and prints a report (also written to
//! `target/chaos-report-sim.md`); it exits non-zero on any violation.
//!
//! `cargo bench -p iter8-benches --bench chaos_sim -- [--experiments N] [--seed S]`, or
//! `bash scripts/chaos.sh sim`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use iter8_benches::chaos;
use iter8_core::action::{Event, RoutingAction};
use iter8_core::driver::{self, BuiltinAnalytics, Ports};
use iter8_core::engine::{Context, RETRY_AFTER};
use iter8_core::manifest::parse_experiments;
use iter8_core::measurement::{
    Measurement, MetricError, MetricErrorKind, MetricReadings, MetricsQuery,
};
use iter8_core::observation::{RoutingObservation, Targets};
use iter8_core::ports::{
    EventRecorder, ExperimentStore, MetricSource, PortError, TargetLocator, TrafficRouter,
};
use iter8_core::{Experiment, ExperimentStatus, MetricsConfig};
use iter8_rand::ChaCha;
use iter8_sim::cluster::{Deployment, Service};
use iter8_sim::metrics::SimMetrics;
use iter8_sim::scenario::block_on;
use iter8_sim::world::World;
use iter8_sim::{Profile, SimTime, Target};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Namespaces the experiments are spread over.
const NAMESPACES: usize = 4;
/// A new experiment every this long.
const CREATE_EVERY: Duration = Duration::from_secs(3);
/// Each experiment's interval and iterations.
const INTERVAL_SECS: u64 = 10;
const MAX_ITERATIONS: u32 = 6;
/// How long a killed operator takes to come back.
const RESTART_DELAY: Duration = Duration::from_secs(5);
/// Faults stop this long after the last experiment is created; then a fault-free drain.
const FAULTY_AFTER_LAST: Duration = Duration::from_secs(120);
const DRAIN: Duration = Duration::from_secs(1800);
/// Per port call: an API error; a write that lands but whose answer times out; the operator
/// killed (the call and the rest of the reconcile never happen).
const P_API_ERROR: f64 = 0.04;
const P_WRITE_TIMEOUT: f64 = 0.02;
const P_KILL: f64 = 0.005;
/// Per metrics query: a garbage answer.
const P_GARBAGE: f64 = 0.05;
/// Share of experiments whose candidate is slow (must be rolled back) and whose candidate
/// Deployment is deleted mid-run.
const P_BAD_CANDIDATE: f64 = 0.3;
const P_DELETED_CANDIDATE: f64 = 0.1;
/// Prometheus outages and operator restarts: one every this long on average.
const OUTAGE_EVERY_SECS: f64 = 90.0;
const RESTART_EVERY_SECS: f64 = 60.0;

/// A status write that reached the store.
#[derive(Debug, Clone)]
struct Persisted {
    iteration: u32,
    increment_time: Option<DateTime<Utc>>,
}

/// The fault injector's state, shared by the faulty ports.
struct Faults {
    rng: ChaCha8Rng,
    on: bool,
    prometheus_down_until: SimTime,
    /// The operator was killed during the current reconcile: every later call fails.
    killed: bool,
    counts: BTreeMap<&'static str, u64>,
    /// Every persisted status write, by `namespace/name`.
    writes: BTreeMap<String, Vec<Persisted>>,
}

impl Faults {
    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    fn roll(&mut self, p: f64) -> bool {
        self.on && self.rng.random_bool(p)
    }

    /// Before a port call: the call fails (API error, or the operator is dead).
    fn before_call(&mut self) -> Result<(), PortError> {
        if self.killed {
            return Err(PortError::new("the operator was killed"));
        }
        if self.roll(P_KILL) {
            self.count("operator killed mid-reconcile");
            self.killed = true;
            return Err(PortError::new("the operator was killed"));
        }
        if self.roll(P_API_ERROR) {
            self.count("API error");
            return Err(PortError::new("500 Internal Server Error (injected)"));
        }
        Ok(())
    }

    /// After a write landed: its answer is lost to a timeout.
    fn after_write(&mut self) -> Result<(), PortError> {
        if self.roll(P_WRITE_TIMEOUT) {
            self.count("write landed, answer timed out");
            return Err(PortError::new(
                "timed out waiting for the API server (injected)",
            ));
        }
        Ok(())
    }
}

/// The simulated world's ports with faults in front of them.
struct Faulty<'a> {
    world: &'a World,
    faults: &'a Mutex<Faults>,
}

impl Faulty<'_> {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl TargetLocator for Faulty<'_> {
    async fn locate(&self, experiment: &Experiment) -> Result<Targets, PortError> {
        self.faults().before_call()?;
        self.world.locate(experiment).await
    }

    async fn delete_target(&self, experiment: &Experiment, name: &str) -> Result<(), PortError> {
        self.faults().before_call()?;
        self.world.delete_target(experiment, name).await
    }
}

#[async_trait]
impl TrafficRouter for Faulty<'_> {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        self.faults().before_call()?;
        self.world.observe(experiment).await
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        self.faults().before_call()?;
        TrafficRouter::apply(self.world, experiment, action).await?;
        self.faults().after_write()
    }
}

#[async_trait]
impl ExperimentStore for Faulty<'_> {
    async fn write_status(
        &self,
        experiment: &Experiment,
        status: &ExperimentStatus,
    ) -> Result<(), PortError> {
        self.faults().before_call()?;
        self.world.write_status(experiment, status).await?;
        let mut faults = self.faults();
        faults
            .writes
            .entry(key(experiment))
            .or_default()
            .push(Persisted {
                iteration: status.current_iteration,
                increment_time: status.last_increment_time,
            });
        faults.after_write()
    }

    async fn add_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        self.faults().before_call()?;
        self.world.add_finalizer(experiment).await?;
        self.faults().after_write()
    }

    async fn remove_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        self.faults().before_call()?;
        self.world.remove_finalizer(experiment).await
    }
}

#[async_trait]
impl EventRecorder for Faulty<'_> {
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError> {
        self.faults().before_call()?;
        self.world.record(experiment, event).await
    }
}

/// The simulated Prometheus, with outages and garbage answers.
struct FaultyPrometheus<'a>(Faulty<'a>);

#[async_trait]
impl MetricSource for FaultyPrometheus<'_> {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        let garbage = {
            let mut faults = self.0.faults();
            if faults.on && self.0.world.lock().now < faults.prometheus_down_until {
                faults.count("Prometheus query during an outage");
                return Err(MetricError::new(
                    MetricErrorKind::Unreachable,
                    "connection refused (injected outage)",
                ));
            }
            faults
                .roll(P_GARBAGE)
                .then(|| faults.rng.random_range(0..3u8))
        };
        let mut readings = SimMetrics(self.0.world).measure(query).await?;
        let mut faults = self.0.faults();
        match garbage {
            None => {}
            Some(0) => {
                faults.count("Prometheus garbage: not JSON");
                return Err(MetricError::new(
                    MetricErrorKind::BadResponse,
                    "expected JSON, got `<html>502 Bad Gateway` (injected)",
                ));
            }
            Some(1) => {
                faults.count("Prometheus garbage: NaN values");
                for r in &mut readings {
                    r.baseline.value = Measurement::NaN;
                    r.candidate.value = Measurement::NaN;
                }
            }
            Some(_) => {
                faults.count("Prometheus garbage: negative sample sizes");
                for r in &mut readings {
                    r.baseline.sample_size = Measurement::Value(-1.0);
                    r.candidate.sample_size = Measurement::Value(-1.0);
                }
            }
        }
        Ok(readings)
    }
}

fn key(exp: &Experiment) -> String {
    format!("{}/{}", exp.namespace(), exp.name())
}

/// One experiment of the run and what was done to it.
struct Planned {
    namespace: String,
    name: String,
    candidate: String,
    bad_candidate: bool,
    candidate_deleted: bool,
}

/// What happens at a virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Create(usize),
    DeleteCandidate(usize),
    PrometheusOutage(u64),
    Restart,
    FaultsOff,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn experiment_yaml(p: &Planned) -> String {
    format!(
        "apiVersion: iter8.tools/v1alpha1
kind: Experiment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  targetService: {{name: {name}, apiVersion: v1, baseline: {name}-v1, candidate: {name}-v2}}
  trafficControl:
    strategy: check_and_increment
    interval: {INTERVAL_SECS}s
    trafficStepSize: 20
    maxIterations: {MAX_ITERATIONS}
    maxTrafficPercentage: 80
  analysis:
    successCriteria:
      - {{metricName: iter8_latency, toleranceType: threshold, tolerance: 200, sampleSize: 5}}
",
        name = p.name,
        ns = p.namespace
    )
}

fn profile_yaml(p: &Planned) -> String {
    let candidate_ms = if p.bad_candidate { 400 } else { 40 };
    format!(
        "rate: 10
versions:
  {name}-v1: {{latency: {{fixed: {{ms: 50, jitter_ms: 10}}}}, error_rate: 0}}
  {name}-v2: {{latency: {{fixed: {{ms: {candidate_ms}, jitter_ms: 10}}}}, error_rate: 0}}
",
        name = p.name
    )
}

/// The reconcile queue: the latest wake-up of each experiment (earlier ones are stale).
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(SimTime, u64, usize)>>,
    latest: Vec<u64>,
    seq: u64,
}

impl Queue {
    fn schedule(&mut self, i: usize, at: SimTime) {
        self.seq += 1;
        if self.latest.len() <= i {
            self.latest.resize(i + 1, 0);
        }
        self.latest[i] = self.seq;
        self.heap.push(Reverse((at, self.seq, i)));
    }

    fn next(&mut self) -> Option<SimTime> {
        while let Some(Reverse((t, seq, i))) = self.heap.peek().copied() {
            if self.latest.get(i) == Some(&seq) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    fn pop(&mut self) -> Option<(SimTime, usize)> {
        self.next()?;
        self.heap.pop().map(|Reverse((t, _, i))| (t, i))
    }

    /// A restarted operator has no queue: it lists every experiment and reconciles each.
    fn restart(&mut self, experiments: usize, at: SimTime) {
        self.heap.clear();
        self.latest.clear();
        for i in 0..experiments {
            self.schedule(i, at);
        }
    }
}

fn main() {
    let chaos::Options {
        experiments: n,
        seed,
    } = chaos::Options::from_command_line(100);
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let world = World::new(seed, false);
    let metrics = MetricsConfig::stock_telemetry_v2();
    let faults = Mutex::new(Faults {
        rng: ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)),
        on: true,
        prometheus_down_until: SimTime::ZERO,
        killed: false,
        counts: BTreeMap::new(),
        writes: BTreeMap::new(),
    });

    // The plan: experiments created one every CREATE_EVERY; some with a slow candidate, some
    // whose candidate is deleted mid-run; outages and restarts at random times.
    let mut plan: Vec<Planned> = Vec::new();
    let mut happenings: Vec<(SimTime, Happening)> = Vec::new();
    for i in 0..n {
        let created = SimTime::ZERO.after(CREATE_EVERY * i as u32);
        let name = format!("svc-{i}");
        let candidate_deleted = rng.random_bool(P_DELETED_CANDIDATE);
        plan.push(Planned {
            namespace: format!("chaos-{}", i % NAMESPACES),
            candidate: format!("{name}-v2"),
            name,
            bad_candidate: rng.random_bool(P_BAD_CANDIDATE),
            candidate_deleted,
        });
        happenings.push((created, Happening::Create(i)));
        if candidate_deleted {
            let after = rng.random_range(5..INTERVAL_SECS * u64::from(MAX_ITERATIONS));
            happenings.push((
                created.after(Duration::from_secs(after)),
                Happening::DeleteCandidate(i),
            ));
        }
    }
    let faults_off = SimTime::ZERO.after(CREATE_EVERY * n as u32 + FAULTY_AFTER_LAST);
    let at = |rng: &mut ChaCha8Rng, every: f64| {
        let mut t = 0.0;
        let mut times = Vec::new();
        loop {
            t += rng.random_range(0.0..2.0 * every);
            let time = SimTime((t * 1000.0) as i64);
            if time >= faults_off {
                return times;
            }
            times.push(time);
        }
    };
    for t in at(&mut rng, OUTAGE_EVERY_SECS) {
        let seconds = rng.random_range(5..60);
        happenings.push((t, Happening::PrometheusOutage(seconds)));
    }
    for t in at(&mut rng, RESTART_EVERY_SECS) {
        happenings.push((t, Happening::Restart));
    }
    happenings.push((faults_off, Happening::FaultsOff));
    happenings.sort();
    let end = faults_off.after(DRAIN);

    let mut queue = Queue::default();
    let mut ids = Vec::new();
    let mut next_happening = 0;
    let mut reconciles = 0u64;
    let mut violations: Vec<String> = Vec::new();
    let mut outcome_counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    loop {
        let due_happening = happenings.get(next_happening).map(|h| h.0);
        let due_reconcile = queue.next();
        let now = match (due_happening, due_reconcile) {
            (Some(h), Some(r)) => h.min(r),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => break,
        };
        if now > end {
            break;
        }
        world.lock().now = now;
        if due_happening == Some(now) {
            let (_, happening) = happenings[next_happening];
            next_happening += 1;
            let mut f = faults.lock().unwrap();
            match happening {
                Happening::Create(i) => {
                    let p = &plan[i];
                    let profile = Profile::from_yaml(&profile_yaml(p), &p.name).expect("profile");
                    let exp = parse_experiments(&experiment_yaml(p)).expect("YAML")[0]
                        .clone()
                        .expect("an experiment")
                        .experiment;
                    let mut s = world.lock();
                    s.settle();
                    s.traffic.add_profiles(&profile);
                    for version in ["v1", "v2"] {
                        s.cluster.apply_deployment(Deployment {
                            namespace: p.namespace.clone(),
                            name: format!("{}-{version}", p.name),
                            pod_labels: labels(&[("app", &p.name), ("version", version)]),
                        });
                    }
                    s.cluster.apply_service(Service {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        selector: labels(&[("app", &p.name)]),
                    });
                    let target = Target::Service {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                    };
                    s.traffic.add_source(target, 10.0, now);
                    ids.push(s.store.apply(exp, now));
                    queue.schedule(i, now);
                }
                Happening::DeleteCandidate(i) => {
                    let p = &plan[i];
                    let mut s = world.lock();
                    let running = s
                        .store
                        .get(ids[i])
                        .is_some_and(|e| !e.status.is_completed());
                    if running {
                        s.settle();
                        s.cluster.delete_deployment(&p.namespace, &p.candidate);
                        f.count("candidate Deployment deleted");
                        // The controller watches Deployments: the experiment wakes up.
                        queue.schedule(i, now);
                    }
                }
                Happening::PrometheusOutage(seconds) => {
                    f.count("Prometheus outage");
                    f.prometheus_down_until = now.after(Duration::from_secs(seconds));
                }
                Happening::Restart => {
                    f.count("operator killed between reconciles");
                    queue.restart(ids.len(), now.after(RESTART_DELAY));
                }
                Happening::FaultsOff => f.on = false,
            }
            continue;
        }
        let Some((_, i)) = queue.pop() else { break };
        let Some(exp) = world.lock().store.get(ids[i]).cloned() else {
            continue;
        };
        reconciles += 1;
        let ports = Faulty {
            world: &world,
            faults: &faults,
        };
        let analytics = BuiltinAnalytics::new(
            FaultyPrometheus(Faulty {
                world: &world,
                faults: &faults,
            }),
            ChaCha,
        );
        let driver_ports = Ports {
            targets: &ports,
            router: &ports,
            analytics: &analytics,
            store: &ports,
            events: &ports,
        };
        let ctx = Context::new(&metrics, now.to_datetime());
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            block_on(driver::reconcile_once(&exp, &driver_ports, &ctx))
        }));
        let killed = std::mem::take(&mut faults.lock().unwrap().killed);
        match result {
            _ if killed => queue.restart(ids.len(), now.after(RESTART_DELAY)),
            Err(_) => {
                violations.push(format!("{}: the reconcile panicked", key(&exp)));
                queue.schedule(i, now.after(RETRY_AFTER));
            }
            Ok(None) => {
                violations.push(format!("{}: the reconcile did not finish", key(&exp)));
                queue.schedule(i, now.after(RETRY_AFTER));
            }
            Ok(Some(Err(_))) => {
                *outcome_counts
                    .entry("reconciles failed (retried)")
                    .or_default() += 1;
                queue.schedule(i, now.after(RETRY_AFTER));
            }
            Ok(Some(Ok(decision))) => {
                if let Some(after) = decision.requeue_after {
                    queue.schedule(i, now.after(after.max(Duration::from_millis(1))));
                }
            }
        }
    }

    // The invariants.
    let faults = faults.into_inner().unwrap();
    let s = world.lock();
    for (i, p) in plan.iter().enumerate() {
        let who = format!("{}/{}", p.namespace, p.name);
        let Some(exp) = ids.get(i).and_then(|&id| s.store.get(id)) else {
            violations.push(format!("{who}: never created or gone"));
            continue;
        };
        let status = &exp.status;
        if !status.is_completed() {
            let started = status.start_timestamp.is_some();
            if chaos::waits_for_candidate(p.candidate_deleted, started, status.message.as_deref()) {
                *outcome_counts
                    .entry(chaos::WAITING_FOR_CANDIDATE)
                    .or_default() += 1;
            } else {
                violations.push(format!(
                    "{who}: stuck in {:?} at iteration {} (started: {:?}): {}",
                    status.phase,
                    status.current_iteration,
                    status.start_timestamp,
                    status.message.as_deref().unwrap_or("")
                ));
            }
            continue;
        }
        chaos::check_completed(
            &who,
            status.split(),
            s.router.observe(exp).split,
            p.bad_candidate,
            p.candidate_deleted,
            &mut violations,
            &mut outcome_counts,
        );
        // Each iteration persisted with one start time.
        let mut starts: BTreeMap<u32, BTreeSet<Option<DateTime<Utc>>>> = BTreeMap::new();
        for w in faults.writes.get(&key(exp)).into_iter().flatten() {
            if w.iteration > 0 {
                starts
                    .entry(w.iteration)
                    .or_default()
                    .insert(w.increment_time);
            }
        }
        for (n, times) in &starts {
            if times.len() > 1 {
                violations.push(format!(
                    "{who}: iteration {n} started {} times",
                    times.len()
                ));
            }
        }
        let numbers: Vec<u64> = starts.keys().map(|&n| u64::from(n)).collect();
        chaos::check_iterations(&who, &numbers, &mut violations, &mut outcome_counts);
    }

    let mut report = String::new();
    let _ = writeln!(report, "# Chaos run in the simulation\n");
    let _ = writeln!(
        report,
        "{n} experiments (seed {seed}) in {NAMESPACES} namespaces, one created every {}s, \
         {INTERVAL_SECS}s intervals, {MAX_ITERATIONS} iterations; faults for {:.0}s of virtual \
         time, then a fault-free drain; {reconciles} reconciles in {:.0}s of virtual time, \
         {:.2}s of wall time.\n",
        CREATE_EVERY.as_secs(),
        faults_off.secs_f64(),
        s.now.secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let faults_injected = faults.counts.iter().map(|(what, count)| (what, *count));
    chaos::write_tables(&mut report, faults_injected, &outcome_counts, &violations);
    chaos::publish(
        &report,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target"),
        "chaos-report-sim.md",
    );
    if !violations.is_empty() {
        std::process::exit(1);
    }
}
