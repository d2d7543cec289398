//! The simulated world behind the ports: cluster, routing, experiments and traffic under one
//! lock, at one virtual time. [`World`] implements every port of `iter8_core::ports` but the
//! metric source ([`crate::metrics::SimMetrics`] reads the same world).

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use iter8_core::action::{Event, RoutingAction};
use iter8_core::observation::{RoutingObservation, Targets};
use iter8_core::ports::{EventRecorder, ExperimentStore, PortError, TargetLocator, TrafficRouter};
use iter8_core::{Experiment, ExperimentStatus, TargetKind};

use crate::clock::SimTime;
use crate::cluster::Cluster;
use crate::metrics::{KindCache, MatchCache};
use crate::router::{Router, RoutingError, owner_id, primary_host};
use crate::store::{ExperimentId, Store};
use crate::traffic::Traffic;

/// Everything the simulation holds.
#[derive(Debug, Clone)]
pub struct WorldState {
    /// The virtual time of the world.
    pub now: SimTime,
    /// Deployments, Services, Gateways.
    pub cluster: Cluster,
    /// Routing rules.
    pub router: Router,
    /// Experiments and events.
    pub store: Store,
    /// Sources, series and profiles.
    pub traffic: Traffic,
    /// What each query template computes.
    pub kinds: KindCache,
    /// The series each experiment's queries matched.
    pub matched: MatchCache,
    /// By experiment id: what its reconciles look up by name, resolved once.
    resolved: Vec<Option<Resolved>>,
}

/// What a reconcile of an experiment would otherwise look up by name every time (a large
/// simulation's names are out of cache, and each lookup costs a miss or several): which targets
/// exist, which experiments share its service, its routing host and owner label. Redone when the
/// cluster or the store's experiments change.
#[derive(Debug, Clone)]
struct Resolved {
    cluster_generation: u64,
    store_generation: u64,
    service: bool,
    baseline: bool,
    candidate: bool,
    on_service: Vec<ExperimentId>,
    host: Option<String>,
    owner: String,
    /// The index of the rules keyed by `host`, once they exist (they stay at that index).
    rules: Option<usize>,
}

/// The cached lookups of `exp`, when it is the checked-out experiment.
fn resolve<'a>(
    cache: &'a mut Vec<Option<Resolved>>,
    cluster: &Cluster,
    store: &Store,
    exp: &Experiment,
) -> Option<&'a mut Resolved> {
    let id = store.checked_out_id(exp)?;
    if cache.len() <= id {
        cache.resize(id + 1, None);
    }
    let (cg, sg) = (cluster.generation(), store.generation());
    let slot = &mut cache[id];
    if slot
        .as_ref()
        .is_none_or(|r| r.cluster_generation != cg || r.store_generation != sg)
    {
        let (service, baseline, candidate) = exist(cluster, exp);
        *slot = Some(Resolved {
            cluster_generation: cg,
            store_generation: sg,
            service,
            baseline,
            candidate,
            on_service: store.on_service(exp).to_vec(),
            host: primary_host(exp),
            owner: owner_id(exp),
            rules: None,
        });
    }
    slot.as_mut()
}

/// Whether the experiment's service, baseline and candidate exist.
fn exist(cluster: &Cluster, exp: &Experiment) -> (bool, bool, bool) {
    let ts = &exp.spec.target_service;
    let ns = exp.target_namespace();
    let service = match ts.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => cluster.service(ns, name).is_some(),
        None => true,
    };
    let exists = |name: &str| match ts.kind() {
        TargetKind::Service => cluster.service(ns, name).is_some(),
        _ => cluster.deployment(ns, name).is_some(),
    };
    (service, exists(ts.baseline()), exists(ts.candidate()))
}

impl WorldState {
    /// Generates the traffic up to `to` under the current routing.
    pub fn advance_traffic(&mut self, to: SimTime) {
        self.traffic.advance(to, &self.cluster, &self.router);
    }

    /// Generates the traffic up to now (before anything changes routing or the cluster).
    pub fn settle(&mut self) {
        let now = self.now;
        self.advance_traffic(now);
    }

    /// Which of the experiment's targets exist, and who else claims them.
    pub fn targets(&mut self, exp: &Experiment) -> Targets {
        let me = self.store.checked_out_id(exp);
        if let Some(r) = resolve(&mut self.resolved, &self.cluster, &self.store, exp) {
            return Targets {
                service: r.service,
                baseline: r.baseline,
                candidate: r.candidate,
                claimed_by: self.store.claimed_among(me, &r.on_service),
                claimed_target: None,
            };
        }
        let (service, baseline, candidate) = exist(&self.cluster, exp);
        Targets {
            service,
            baseline,
            candidate,
            claimed_by: self.store.claimed_by(exp),
            claimed_target: None,
        }
    }

    /// What routing does for the experiment now.
    pub fn observe_routing(&mut self, exp: &Experiment) -> RoutingObservation {
        match resolve(&mut self.resolved, &self.cluster, &self.store, exp) {
            Some(r) => {
                if r.rules.is_none() {
                    r.rules = r.host.as_deref().and_then(|h| self.router.rules_index(h));
                }
                self.router.observe_index(exp, r.rules, &r.owner)
            }
            None => self.router.observe(exp),
        }
    }

    /// Applies a routing change for the experiment (after generating the traffic so far).
    pub fn apply_routing(
        &mut self,
        exp: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), RoutingError> {
        self.settle();
        match resolve(&mut self.resolved, &self.cluster, &self.store, exp) {
            Some(r) => self
                .router
                .apply_as(exp, r.host.as_deref(), &r.owner, action),
            None => self.router.apply(exp, action),
        }
    }
}

/// The shared world the ports work on.
#[derive(Debug)]
pub struct World {
    state: Mutex<WorldState>,
}

impl World {
    /// A world at time 0 with nothing in it; traffic randomness from `seed`.
    pub fn new(seed: u64, keep_events: bool) -> Self {
        World {
            state: Mutex::new(WorldState {
                now: SimTime::ZERO,
                cluster: Cluster::default(),
                router: Router::default(),
                store: Store::new(keep_events),
                traffic: Traffic::new(seed),
                kinds: KindCache::default(),
                matched: MatchCache::default(),
                resolved: Vec::new(),
            }),
        }
    }

    /// Locks the world (a panic elsewhere never makes it unusable).
    pub fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn not_found(exp: &Experiment) -> PortError {
    PortError::new(format!(
        "experiment {}.{} not found",
        exp.name(),
        exp.namespace()
    ))
}

#[async_trait]
impl TargetLocator for World {
    async fn locate(&self, experiment: &Experiment) -> Result<Targets, PortError> {
        Ok(self.lock().targets(experiment))
    }

    async fn delete_target(&self, experiment: &Experiment, name: &str) -> Result<(), PortError> {
        let mut s = self.lock();
        s.settle();
        let ns = experiment.target_namespace().to_string();
        let deleted = match experiment.spec.target_service.kind() {
            TargetKind::Service => s.cluster.delete_service(&ns, name),
            _ => s.cluster.delete_deployment(&ns, name),
        };
        if deleted {
            Ok(())
        } else {
            Err(PortError::new(format!("{name} not found in {ns}")))
        }
    }
}

#[async_trait]
impl TrafficRouter for World {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        Ok(self.lock().observe_routing(experiment))
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        self.lock()
            .apply_routing(experiment, action)
            .map_err(|e| PortError::new(e.to_string()))
    }
}

#[async_trait]
impl ExperimentStore for World {
    async fn write_status(
        &self,
        experiment: &Experiment,
        status: &ExperimentStatus,
    ) -> Result<(), PortError> {
        let mut s = self.lock();
        let id = s
            .store
            .id_of(experiment)
            .ok_or_else(|| not_found(experiment))?;
        s.store.write_status(id, status);
        Ok(())
    }

    async fn add_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        let mut s = self.lock();
        let id = s
            .store
            .id_of(experiment)
            .ok_or_else(|| not_found(experiment))?;
        s.store.add_finalizer(id);
        Ok(())
    }

    async fn remove_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        let mut s = self.lock();
        let id = s
            .store
            .id_of(experiment)
            .ok_or_else(|| not_found(experiment))?;
        s.store.remove_finalizer(id);
        Ok(())
    }
}

#[async_trait]
impl EventRecorder for World {
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError> {
        let mut s = self.lock();
        let now = s.now;
        s.store.record(now, experiment, event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Deployment, Service};

    fn experiment(name: &str) -> Experiment {
        crate::test_support::experiment(name, "v1", "v2")
    }

    #[test]
    fn resolved_targets_follow_the_cluster_and_the_store() {
        let world = World::new(1, false);
        let mut s = world.lock();
        s.cluster.apply_service(Service {
            namespace: "ns".into(),
            name: "reviews".into(),
            selector: Default::default(),
        });
        for v in ["v1", "v2"] {
            s.cluster.apply_deployment(Deployment {
                namespace: "ns".into(),
                name: v.into(),
                pod_labels: [("version".to_string(), v.to_string())].into(),
            });
        }
        let a = s.store.apply(experiment("a"), SimTime::ZERO);
        let exp = s.store.check_out(a).unwrap();
        let t = s.targets(&exp);
        assert!(t.service && t.baseline && t.candidate && t.claimed_by.is_none());
        assert!(s.cluster.delete_deployment("ns", "v2"));
        assert!(!s.targets(&exp).candidate, "a deleted candidate is seen");
        // Another started experiment on the same service, created after the first resolution.
        let b = s.store.apply(experiment("b"), SimTime::ZERO);
        s.store.get_mut(b).unwrap().status.start_timestamp = Some(SimTime::ZERO.to_datetime());
        assert_eq!(s.targets(&exp).claimed_by.as_deref(), Some("b.ns"));
        // Routing: resolved and looked-up answers agree.
        s.apply_routing(&exp, &iter8_core::action::RoutingAction::Initialize)
            .unwrap();
        assert_eq!(s.observe_routing(&exp), s.router.observe(&exp));
        s.store.check_in(a, exp, None);
    }
}
