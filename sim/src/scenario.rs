//! The simulation loop: experiments reconciled through `iter8_core::driver::reconcile_once`
//! over the in-memory ports, on a virtual clock driven by an event queue of wake-ups (each
//! decision's `requeue_after`, and a watch-like wake-up when a target of a waiting experiment is
//! applied). Nothing sleeps; a whole experiment runs in microseconds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use iter8_core::action::{Event, EventType};
use iter8_core::driver::{self, BuiltinAnalytics, Ports};
use iter8_core::engine::{Context, Decision, RETRY_AFTER};
use iter8_core::{Experiment, MetricsConfig};
use iter8_rand::ChaCha;

use crate::analytics::ExternalAnalytics;
use crate::clock::SimTime;
use crate::cluster::{self, ManifestError, Object};
use crate::metrics::SimMetrics;
use crate::profile::Profile;
use crate::store::ExperimentId;
use crate::traffic::Target;
use crate::world::World;

/// Why a simulation step could not be taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A manifest could not be applied.
    #[error("{source_name}: {error}")]
    Manifest {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        error: ManifestError,
    },
    /// No such experiment.
    #[error("no experiment {0}")]
    NoExperiment(String),
}

/// One reconcile, as observers see it.
#[derive(Debug)]
pub struct Reconciled<'a> {
    /// When it ran.
    pub time: SimTime,
    /// Which experiment.
    pub id: ExperimentId,
    /// The experiment before the reconcile.
    pub before: &'a Experiment,
    /// What the driver decided and wrote (`decision.status` is the new status).
    pub decision: &'a Decision,
}

/// Runs a future that never waits on anything real (every simulated port answers at once), on
/// this thread; `None` if it is still pending after a few polls (a port that waits).
pub fn block_on<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    for _ in 0..64 {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

/// A simulated cluster with iter8 running in it.
pub struct Sim {
    // Shared so that a server (remote analytics) can read the same world.
    world: Arc<World>,
    analytics: Option<ExternalAnalytics>,
    metrics: MetricsConfig,
    queue: BinaryHeap<Reverse<(SimTime, u64, ExperimentId)>>,
    /// By experiment id: the sequence number of its latest wake-up (earlier ones are stale);
    /// 0 for none.
    latest: Vec<u64>,
    watchers: HashMap<(String, String), Vec<ExperimentId>>,
    seq: u64,
    now: SimTime,
    reconciles: u64,
}

impl Sim {
    /// An empty cluster at time 0 with the stock telemetry-v2 metrics; traffic randomness from
    /// `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_options(seed, true)
    }

    /// Like [`Sim::new`]; `keep_events: false` drops recorded events (for large runs).
    pub fn with_options(seed: u64, keep_events: bool) -> Self {
        Sim {
            world: Arc::new(World::new(seed, keep_events)),
            analytics: None,
            metrics: MetricsConfig::stock_telemetry_v2(),
            queue: BinaryHeap::new(),
            latest: Vec::new(),
            watchers: HashMap::new(),
            seq: 0,
            now: SimTime::ZERO,
            reconciles: 0,
        }
    }

    /// The world (cluster, routing, store, traffic).
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, shared (e.g. with an analytics server over
    /// [`crate::analytics::SharedMetrics`]).
    pub fn shared_world(&self) -> Arc<World> {
        self.world.clone()
    }

    /// Analyses experiments with `analytics` from now on instead of the built-in analytics over
    /// the simulated Prometheus.
    pub fn set_analytics(&mut self, analytics: ExternalAnalytics) {
        self.analytics = Some(analytics);
    }

    /// The virtual time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Reconciles run so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles
    }

    /// The metrics configuration experiments run with.
    pub fn metrics_config(&self) -> &MetricsConfig {
        &self.metrics
    }

    /// Replaces the metrics configuration (as applying `iter8config-metrics` does).
    pub fn set_metrics_config(&mut self, metrics: MetricsConfig) {
        self.metrics = metrics;
    }

    /// Adds version profiles.
    pub fn add_profiles(&mut self, profile: &Profile) {
        let mut s = self.world.lock();
        s.settle();
        s.traffic.add_profiles(profile);
    }

    /// Starts sending `rate` requests per second to `target`, from now.
    pub fn add_source(&mut self, target: Target, rate: f64) {
        let mut s = self.world.lock();
        let now = s.now;
        s.traffic.add_source(target, rate, now);
    }

    /// Applies a manifest (`kubectl apply -n namespace -f`); returns what was applied, as
    /// `kind/name`.
    pub fn apply_yaml(
        &mut self,
        text: &str,
        namespace: &str,
        source_name: &str,
    ) -> Result<Vec<String>, SimError> {
        let objects =
            cluster::parse_objects(text, namespace).map_err(|error| SimError::Manifest {
                source_name: source_name.to_string(),
                error,
            })?;
        Ok(objects.into_iter().map(|o| self.apply(o)).collect())
    }

    /// Applies one object; returns it as `kind/name`.
    pub fn apply(&mut self, object: Object) -> String {
        let described = object.describe();
        let touched = {
            let mut s = self.world.lock();
            s.settle();
            match object {
                Object::Deployment(d) => {
                    let k = (d.namespace.clone(), d.name.clone());
                    s.cluster.apply_deployment(d);
                    Some(k)
                }
                Object::Service(svc) => {
                    let k = (svc.namespace.clone(), svc.name.clone());
                    s.cluster.apply_service(svc);
                    Some(k)
                }
                Object::Gateway(g) => {
                    s.cluster.apply_gateway(g);
                    None
                }
                Object::MetricsConfig(m) => {
                    self.metrics = *m;
                    None
                }
                Object::Experiment(e) => {
                    drop(s);
                    self.apply_experiment(*e);
                    None
                }
                Object::Other { .. } => None,
            }
        };
        if let Some(key) = touched {
            // The controller watches its targets: a waiting experiment wakes up now.
            let waiting: Vec<ExperimentId> = {
                let s = self.world.lock();
                self.watchers
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&id| s.store.get(id).is_some_and(|e| !e.status.is_completed()))
                    .collect()
            };
            for id in waiting {
                self.schedule(id, self.now);
            }
        }
        described
    }

    /// Creates (or updates the spec of) an experiment and reconciles it now.
    pub fn apply_experiment(&mut self, exp: Experiment) -> ExperimentId {
        let ns = exp.target_namespace().to_string();
        let ts = &exp.spec.target_service;
        let names: Vec<String> = [ts.name.clone(), ts.baseline.clone(), ts.candidate.clone()]
            .into_iter()
            .flatten()
            .collect();
        let id = {
            let mut s = self.world.lock();
            let now = s.now;
            s.store.apply(exp, now)
        };
        for name in names {
            let w = self.watchers.entry((ns.clone(), name)).or_default();
            if !w.contains(&id) {
                w.push(id);
            }
        }
        self.schedule(id, self.now);
        id
    }

    /// Marks an experiment for deletion (`kubectl delete experiment`) and reconciles it now.
    pub fn delete_experiment(&mut self, namespace: &str, name: &str) -> Result<(), SimError> {
        let id = {
            let mut s = self.world.lock();
            let now = s.now.to_datetime();
            let id = s
                .store
                .id(namespace, name)
                .ok_or_else(|| SimError::NoExperiment(format!("{name}.{namespace}")))?;
            let exp = s
                .store
                .get_mut(id)
                .ok_or_else(|| SimError::NoExperiment(format!("{name}.{namespace}")))?;
            if exp.metadata.finalizers.is_empty() {
                s.store.remove(id);
                return Ok(());
            }
            exp.metadata.deletion_timestamp.get_or_insert(now);
            id
        };
        self.schedule(id, self.now);
        Ok(())
    }

    /// The experiment of that id.
    pub fn get(&self, id: ExperimentId) -> Option<Experiment> {
        self.world.lock().store.get(id).cloned()
    }

    /// An experiment by namespace and name.
    pub fn experiment(&self, namespace: &str, name: &str) -> Option<Experiment> {
        let s = self.world.lock();
        s.store
            .id(namespace, name)
            .and_then(|id| s.store.get(id).cloned())
    }

    /// Every experiment, in creation order (as `kubectl get experiments` lists them here).
    pub fn experiments(&self) -> Vec<Experiment> {
        self.world
            .lock()
            .store
            .all()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// When the next wake-up is due, if any.
    pub fn next_wakeup(&mut self) -> Option<SimTime> {
        while let Some(Reverse((t, seq, id))) = self.queue.peek().copied() {
            if self.latest.get(id) == Some(&seq) {
                return Some(t);
            }
            self.queue.pop();
        }
        None
    }

    fn schedule(&mut self, id: ExperimentId, at: SimTime) {
        self.seq += 1;
        if self.latest.len() <= id {
            self.latest.resize(id + 1, 0);
        }
        self.latest[id] = self.seq;
        self.queue.push(Reverse((at.max(self.now), self.seq, id)));
    }

    /// Runs every wake-up due up to `until`, then moves the clock to `until`.
    pub fn run_until(&mut self, until: SimTime, observer: &mut dyn FnMut(&Reconciled<'_>)) {
        while let Some(t) = self.next_wakeup() {
            if t > until {
                break;
            }
            let Some(Reverse((t, _, id))) = self.queue.pop() else {
                break;
            };
            self.set_now(t);
            self.reconcile(id, observer);
        }
        self.set_now(until.max(self.now));
    }

    /// Runs for a while of virtual time.
    pub fn run_for(&mut self, d: Duration, observer: &mut dyn FnMut(&Reconciled<'_>)) {
        let until = self.now.after(d);
        self.run_until(until, observer);
    }

    /// Runs until the experiment has completed (or is gone) or `limit` is reached; whether it
    /// completed. The clock stops at the completing reconcile.
    pub fn run_until_completed(
        &mut self,
        id: ExperimentId,
        limit: SimTime,
        observer: &mut dyn FnMut(&Reconciled<'_>),
    ) -> bool {
        loop {
            let done = self
                .world
                .lock()
                .store
                .get(id)
                .is_none_or(|e| e.status.is_completed());
            if done {
                return true;
            }
            match self.next_wakeup() {
                Some(t) if t <= limit => {
                    let Some(Reverse((t, _, id2))) = self.queue.pop() else {
                        return false;
                    };
                    self.set_now(t);
                    self.reconcile(id2, observer);
                }
                _ => {
                    self.set_now(limit.max(self.now));
                    return false;
                }
            }
        }
    }

    fn set_now(&mut self, t: SimTime) {
        self.now = t;
        self.world.lock().now = t;
    }

    fn reconcile(&mut self, id: ExperimentId, observer: &mut dyn FnMut(&Reconciled<'_>)) {
        let now = self.now;
        // The reconcile works on a copy, as a controller on what it read; the ports write to
        // the stored experiment.
        let Some(exp) = ({
            let mut s = self.world.lock();
            s.settle();
            s.store.get(id).cloned()
        }) else {
            return;
        };
        self.reconciles += 1;
        let ctx = Context::new(&self.metrics, now.to_datetime());
        let world: &World = &self.world;
        let outcome = match &self.analytics {
            None => {
                let analytics = BuiltinAnalytics::new(SimMetrics(world), ChaCha);
                let ports = Ports {
                    targets: world,
                    router: world,
                    analytics: &analytics,
                    store: world,
                    events: world,
                };
                block_on(driver::reconcile_once(&exp, &ports, &ctx))
            }
            Some(external) => Some(external.reconcile(&exp, world, &ctx)),
        };
        let retry = match outcome {
            Some(Ok(decision)) => {
                observer(&Reconciled {
                    time: now,
                    id,
                    before: &exp,
                    decision: &decision,
                });
                decision.requeue_after
            }
            other => {
                let message = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "a simulated port did not answer".to_string(),
                };
                let mut s = self.world.lock();
                s.store.record(
                    now,
                    &exp,
                    &Event {
                        type_: EventType::Warning,
                        reason: "ReconcileFailed".to_string(),
                        message,
                    },
                );
                Some(RETRY_AFTER)
            }
        };
        if let Some(d) = retry {
            let at = now.after(d.max(Duration::from_millis(1)));
            self.schedule(id, at);
        }
    }
}
