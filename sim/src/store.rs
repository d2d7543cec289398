//! The simulated API server's share for experiments: the Experiment objects (spec, status,
//! finalizers) and the events recorded on them.

use iter8_core::action::Event;
use iter8_core::{Experiment, ExperimentStatus, FINALIZER};

use crate::by_name::{self, ByName};
use crate::clock::SimTime;

/// An event recorded on an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// When.
    pub time: SimTime,
    /// The experiment's `name.namespace`.
    pub experiment: String,
    /// The event.
    pub event: Event,
}

/// Experiments in creation order, known by their namespace and name.
#[derive(Debug, Clone, Default)]
pub struct Store {
    experiments: Vec<Option<Experiment>>,
    /// Namespace, name -> id.
    index: ByName<ExperimentId>,
    /// Namespace, service (or first host) -> the experiments on it, in creation order.
    by_service: ByName<Vec<ExperimentId>>,
    events: Vec<RecordedEvent>,
    keep_events: bool,
}

/// An experiment's handle in the store (stable for its life).
pub type ExperimentId = usize;

/// The namespace and service (or first host) an experiment works on.
fn service_key(exp: &Experiment) -> (&str, &str) {
    let ts = &exp.spec.target_service;
    let service = ts
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or_else(|| ts.hosts.iter().find_map(|h| h.name.as_deref()))
        .unwrap_or_default();
    (exp.target_namespace(), service)
}

impl Store {
    /// An empty store; `keep_events`: whether recorded events are kept (large runs drop them).
    pub fn new(keep_events: bool) -> Self {
        Store {
            keep_events,
            ..Store::default()
        }
    }

    /// Creates an experiment, or replaces the spec of an existing one (as `kubectl apply`
    /// does: the status is kept). Returns its id.
    pub fn apply(&mut self, mut exp: Experiment, now: SimTime) -> ExperimentId {
        if let Some(id) = self.id(exp.namespace(), exp.name())
            && let Some(Some(old)) = self.experiments.get_mut(id)
        {
            old.spec = exp.spec;
            old.action = exp.action;
            return id;
        }
        exp.metadata
            .creation_timestamp
            .get_or_insert(now.to_datetime());
        let id = self.experiments.len();
        let (namespace, service) = service_key(&exp);
        by_name::entry(&mut self.by_service, namespace, service).push(id);
        by_name::put(&mut self.index, exp.namespace(), exp.name(), id);
        self.experiments.push(Some(exp));
        id
    }

    /// The id of an experiment, by its namespace and name.
    pub fn id(&self, namespace: &str, name: &str) -> Option<ExperimentId> {
        by_name::find(&self.index, namespace, name).copied()
    }

    /// An experiment by id (`None` once deleted).
    pub fn get(&self, id: ExperimentId) -> Option<&Experiment> {
        self.experiments.get(id).and_then(Option::as_ref)
    }

    /// An experiment by id, to change.
    pub fn get_mut(&mut self, id: ExperimentId) -> Option<&mut Experiment> {
        self.experiments.get_mut(id).and_then(Option::as_mut)
    }

    /// Every live experiment, in creation order.
    pub fn all(&self) -> impl Iterator<Item = (ExperimentId, &Experiment)> {
        self.experiments
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
    }

    /// Writes an experiment's status.
    pub fn write_status(&mut self, id: ExperimentId, status: &ExperimentStatus) {
        if let Some(e) = self.get_mut(id) {
            e.status = status.clone();
        }
    }

    /// Adds iter8's finalizer.
    pub fn add_finalizer(&mut self, id: ExperimentId) {
        if let Some(e) = self.get_mut(id)
            && !e.has_finalizer()
        {
            e.metadata.finalizers.push(FINALIZER.to_string());
        }
    }

    /// Removes iter8's finalizer; the experiment goes if it was being deleted and has no other.
    pub fn remove_finalizer(&mut self, id: ExperimentId) {
        let gone = match self.get_mut(id) {
            Some(e) => {
                e.metadata.finalizers.retain(|f| f != FINALIZER);
                e.is_being_deleted() && e.metadata.finalizers.is_empty()
            }
            None => false,
        };
        if gone {
            self.remove(id);
        }
    }

    /// Deletes an experiment now (its finalizers are gone).
    pub fn remove(&mut self, id: ExperimentId) {
        if let Some(slot) = self.experiments.get_mut(id)
            && let Some(exp) = slot.take()
        {
            by_name::take(&mut self.index, exp.namespace(), exp.name());
        }
    }

    /// Another started, unfinished experiment on the same service as `exp`: its `name.namespace`.
    pub fn claimed_by(&self, exp: &Experiment) -> Option<String> {
        let me = self.id(exp.namespace(), exp.name());
        let (namespace, service) = service_key(exp);
        by_name::find(&self.by_service, namespace, service)
            .into_iter()
            .flatten()
            .filter(|&&id| Some(id) != me)
            .filter_map(|&id| self.get(id))
            .find(|o| {
                o.status.start_timestamp.is_some()
                    && !o.status.is_completed()
                    && !o.is_being_deleted()
            })
            .map(|o| format!("{}.{}", o.name(), o.namespace()))
    }

    /// Records an event.
    pub fn record(&mut self, time: SimTime, exp: &Experiment, event: &Event) {
        if self.keep_events {
            self.events.push(RecordedEvent {
                time,
                experiment: format!("{}.{}", exp.name(), exp.namespace()),
                event: event.clone(),
            });
        }
    }

    /// The events recorded so far.
    pub fn events(&self) -> &[RecordedEvent] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(name: &str) -> Experiment {
        crate::test_support::experiment(name, "v1", "v2")
    }

    #[test]
    fn the_status_written_last_is_the_one_stored() {
        let mut store = Store::new(false);
        let id = store.apply(experiment("a"), SimTime::ZERO);
        for message in ["first", "second"] {
            let status = ExperimentStatus {
                message: Some(message.into()),
                ..Default::default()
            };
            store.write_status(id, &status);
        }
        store.add_finalizer(id);
        let e = store.get(id).unwrap();
        assert_eq!(e.status.message.as_deref(), Some("second"));
        assert!(e.has_finalizer());
    }

    #[test]
    fn an_experiment_is_known_by_its_namespace_and_name() {
        let mut store = Store::new(false);
        store.apply(experiment("a"), SimTime::ZERO);
        let id = store.apply(experiment("b"), SimTime::ZERO);
        assert_eq!(store.id("ns", "b"), Some(id));
        assert_eq!(store.id("other", "b"), None);
        let mut changed = experiment("b");
        changed.spec.target_service.candidate = Some("v3".into());
        assert_eq!(
            store.apply(changed, SimTime::ZERO),
            id,
            "a new spec, the same experiment"
        );
        assert_eq!(
            store
                .get(id)
                .unwrap()
                .spec
                .target_service
                .candidate
                .as_deref(),
            Some("v3")
        );
    }

    #[test]
    fn another_started_experiment_on_the_service_claims_it() {
        let mut store = Store::new(false);
        let a = store.apply(experiment("a"), SimTime::ZERO);
        let b = store.apply(experiment("b"), SimTime::ZERO);
        assert_eq!(store.claimed_by(store.get(a).unwrap()), None);
        store.get_mut(b).unwrap().status.start_timestamp = Some(SimTime::ZERO.to_datetime());
        assert_eq!(
            store.claimed_by(store.get(a).unwrap()).as_deref(),
            Some("b.ns")
        );
        assert_eq!(
            store.claimed_by(store.get(b).unwrap()),
            None,
            "not by itself"
        );
    }

    #[test]
    fn the_last_finalizer_removed_while_deleting_deletes() {
        let mut store = Store::new(false);
        let id = store.apply(experiment("a"), SimTime::ZERO);
        store.add_finalizer(id);
        store.get_mut(id).unwrap().metadata.deletion_timestamp = Some(SimTime::ZERO.to_datetime());
        store.remove_finalizer(id);
        assert!(store.get(id).is_none());
        assert_eq!(store.id("ns", "a"), None);
    }
}
