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
use crate::metrics::KindCache;
use crate::router::{Router, RoutingError};
use crate::store::Store;
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
    pub fn targets(&self, exp: &Experiment) -> Targets {
        let (service, baseline, candidate) = exist(&self.cluster, exp);
        Targets {
            service,
            baseline,
            candidate,
            claimed_by: self.store.claimed_by(exp),
            claimed_target: None,
        }
    }

    /// Applies a routing change for the experiment (after generating the traffic so far).
    pub fn apply_routing(
        &mut self,
        exp: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), RoutingError> {
        self.settle();
        self.router.apply(exp, action)
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
        Ok(self.lock().router.observe(experiment))
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
            .id(experiment.namespace(), experiment.name())
            .ok_or_else(|| not_found(experiment))?;
        s.store.write_status(id, status);
        Ok(())
    }

    async fn add_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        let mut s = self.lock();
        let id = s
            .store
            .id(experiment.namespace(), experiment.name())
            .ok_or_else(|| not_found(experiment))?;
        s.store.add_finalizer(id);
        Ok(())
    }

    async fn remove_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        let mut s = self.lock();
        let id = s
            .store
            .id(experiment.namespace(), experiment.name())
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
    use crate::cluster::Service;
    use crate::test_support::deployment;

    fn experiment(name: &str) -> Experiment {
        crate::test_support::experiment(name, "reviews-v1", "reviews-v2")
    }

    #[test]
    fn targets_follow_the_cluster_and_the_store() {
        let world = World::new(1, false);
        let mut s = world.lock();
        s.cluster.apply_service(Service {
            namespace: "ns".into(),
            name: "reviews".into(),
            selector: Default::default(),
        });
        for v in ["v1", "v2"] {
            s.cluster
                .apply_deployment(deployment(&format!("reviews-{v}"), v));
        }
        let a = s.store.apply(experiment("a"), SimTime::ZERO);
        let exp = s.store.get(a).unwrap().clone();
        let t = s.targets(&exp);
        assert!(t.service && t.baseline && t.candidate && t.claimed_by.is_none());
        assert!(s.cluster.delete_deployment("ns", "reviews-v2"));
        assert!(!s.targets(&exp).candidate, "a deleted candidate is seen");
        // Another started experiment on the same service.
        let b = s.store.apply(experiment("b"), SimTime::ZERO);
        s.store.get_mut(b).unwrap().status.start_timestamp = Some(SimTime::ZERO.to_datetime());
        assert_eq!(s.targets(&exp).claimed_by.as_deref(), Some("b.ns"));
    }
}
