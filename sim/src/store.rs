//! The simulated API server's share for experiments: the Experiment objects (spec, status,
//! finalizers) and the events recorded on them.

use iter8_core::action::Event;
use iter8_core::{Experiment, ExperimentStatus, FINALIZER};

use crate::clock::SimTime;
use crate::names::Map;

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

/// Experiments in creation order, looked up by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct Store {
    experiments: Vec<Option<Experiment>>,
    /// The experiment being reconciled ([`Store::check_out`]) and what was written to it since.
    out: Option<(ExperimentId, Pending)>,
    /// The address and length of the checked-out experiment's name: the ports are handed that
    /// experiment on every call, and its name's buffer identifies it without a lookup by name
    /// (no other live string has the same buffer; a copy of the experiment has its own).
    out_name: Option<(usize, usize)>,
    /// Bumped when an experiment is created, changed or removed (cached lookups follow it).
    generation: u64,
    index: Map<String, Map<String, usize>>,
    by_service: Map<String, Map<String, Vec<usize>>>,
    events: Vec<RecordedEvent>,
    keep_events: bool,
}

/// An experiment's handle in the store (stable for its life).
pub type ExperimentId = usize;

/// What the ports wrote to a checked-out experiment, applied when it is checked in.
#[derive(Debug, Clone, Default)]
struct Pending {
    /// A status was written. It is not copied: the driver returns the decision whose status it
    /// wrote, and [`Store::check_in`] takes that (a status is the largest thing a reconcile
    /// writes, and copying it cost more than the rest of the store's work).
    status_written: bool,
    /// What was written, kept in debug builds to check that the status handed in is it.
    #[cfg(debug_assertions)]
    written: Option<ExperimentStatus>,
    add_finalizer: bool,
    remove_finalizer: bool,
}

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

/// Where the experiment's name is stored (see `Store::out_name`); `None` for an empty name.
fn name_buffer(exp: &Experiment) -> Option<(usize, usize)> {
    exp.metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| (n.as_ptr() as usize, n.len()))
}

impl Store {
    /// An empty store; `keep_events`: whether recorded events are kept (large runs drop them).
    pub fn new(keep_events: bool) -> Self {
        Store {
            keep_events,
            ..Store::default()
        }
    }

    /// Bumped when an experiment is created, changes spec or is removed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Creates an experiment, or replaces the spec of an existing one (as `kubectl apply`
    /// does: the status is kept). Returns its id.
    pub fn apply(&mut self, mut exp: Experiment, now: SimTime) -> ExperimentId {
        self.generation += 1;
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
        let (exp_ns, exp_name) = (exp.namespace().to_string(), exp.name().to_string());
        let id = self.experiments.len();
        let (ns, service) = service_key(&exp);
        self.by_service
            .entry(ns.to_string())
            .or_default()
            .entry(service.to_string())
            .or_default()
            .push(id);
        self.experiments.push(Some(exp));
        self.index.entry(exp_ns).or_default().insert(exp_name, id);
        id
    }

    /// The experiment checked out for a reconcile, if one is.
    pub fn checked_out(&self) -> Option<ExperimentId> {
        self.out.as_ref().map(|(id, _)| *id)
    }

    /// The id of an experiment.
    pub fn id(&self, namespace: &str, name: &str) -> Option<ExperimentId> {
        self.index.get(namespace)?.get(name).copied()
    }

    /// The id of the experiment a port was handed.
    pub fn id_of(&self, exp: &Experiment) -> Option<ExperimentId> {
        self.checked_out_id(exp)
            .or_else(|| self.id(exp.namespace(), exp.name()))
    }

    /// The id of `exp` if it is the checked-out experiment itself (not a copy), found without
    /// a lookup by name.
    pub fn checked_out_id(&self, exp: &Experiment) -> Option<ExperimentId> {
        match (&self.out, self.out_name) {
            (Some((id, _)), Some(key)) if name_buffer(exp) == Some(key) => Some(*id),
            _ => None,
        }
    }

    /// An experiment by id (`None` once deleted).
    pub fn get(&self, id: ExperimentId) -> Option<&Experiment> {
        self.experiments.get(id).and_then(Option::as_ref)
    }

    /// An experiment by id, to change.
    pub fn get_mut(&mut self, id: ExperimentId) -> Option<&mut Experiment> {
        // The spec may change: lookups cached from it are redone.
        self.generation += 1;
        self.slot_mut(id)
    }

    fn slot_mut(&mut self, id: ExperimentId) -> Option<&mut Experiment> {
        self.experiments.get_mut(id).and_then(Option::as_mut)
    }

    /// Every live experiment, in creation order.
    pub fn all(&self) -> impl Iterator<Item = (ExperimentId, &Experiment)> {
        self.experiments
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
    }

    /// Takes an experiment out for a reconcile, instead of cloning it: until
    /// [`Store::check_in`], [`Store::get`] does not see it and the writes below wait aside.
    pub fn check_out(&mut self, id: ExperimentId) -> Option<Experiment> {
        let exp = self.experiments.get_mut(id)?.take()?;
        self.out = Some((id, Pending::default()));
        self.out_name = name_buffer(&exp);
        Some(exp)
    }

    /// Puts a checked-out experiment back with what was written meanwhile; removes it if its
    /// last finalizer went while it was being deleted. `decided`: the status of the decision
    /// the reconcile returned, which is the status it wrote, if it wrote one (the driver's
    /// contract); `None` when the reconcile returned none (it then wrote none).
    pub fn check_in(
        &mut self,
        id: ExperimentId,
        mut exp: Experiment,
        decided: Option<ExperimentStatus>,
    ) {
        let pending = match self.out.take() {
            Some((out, pending)) if out == id => {
                self.out_name = None;
                pending
            }
            other => {
                self.out = other;
                Pending::default()
            }
        };
        if pending.status_written {
            #[cfg(debug_assertions)]
            assert_eq!(
                decided.as_ref(),
                pending.written.as_ref(),
                "the status handed in is not the one written"
            );
            match decided {
                Some(status) => exp.status = status,
                // A write without a decision would be a broken driver contract; the status
                // stays as it was rather than taking something that was not written.
                None => debug_assert!(false, "a status was written but none handed in"),
            }
        }
        if pending.add_finalizer && !exp.has_finalizer() {
            exp.metadata.finalizers.push(FINALIZER.to_string());
        }
        if pending.remove_finalizer {
            exp.metadata.finalizers.retain(|f| f != FINALIZER);
        }
        let gone = pending.remove_finalizer
            && exp.is_being_deleted()
            && exp.metadata.finalizers.is_empty();
        if let Some(slot) = self.experiments.get_mut(id) {
            *slot = Some(exp);
        }
        if gone {
            self.remove(id);
        }
    }

    fn pending(&mut self, id: ExperimentId) -> Option<&mut Pending> {
        self.out
            .as_mut()
            .and_then(|(out, p)| (*out == id).then_some(p))
    }

    /// Writes an experiment's status.
    pub fn write_status(&mut self, id: ExperimentId, status: &ExperimentStatus) {
        if let Some(p) = self.pending(id) {
            p.status_written = true;
            #[cfg(debug_assertions)]
            {
                p.written = Some(status.clone());
            }
        } else if let Some(e) = self.slot_mut(id) {
            e.status = status.clone();
        }
    }

    /// Adds iter8's finalizer.
    pub fn add_finalizer(&mut self, id: ExperimentId) {
        if let Some(p) = self.pending(id) {
            p.add_finalizer = true;
            p.remove_finalizer = false;
        } else if let Some(e) = self.slot_mut(id)
            && !e.has_finalizer()
        {
            e.metadata.finalizers.push(FINALIZER.to_string());
        }
    }

    /// Removes iter8's finalizer; the experiment goes if it was being deleted and has no other.
    pub fn remove_finalizer(&mut self, id: ExperimentId) {
        if let Some(p) = self.pending(id) {
            p.remove_finalizer = true;
            p.add_finalizer = false;
            return;
        }
        let gone = match self.slot_mut(id) {
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
        self.generation += 1;
        if let Some(slot) = self.experiments.get_mut(id)
            && let Some(exp) = slot.take()
            && let Some(names) = self.index.get_mut(exp.namespace())
        {
            names.remove(exp.name());
        }
    }

    /// The experiments on the same service as `exp` (itself included, if stored).
    pub fn on_service(&self, exp: &Experiment) -> &[ExperimentId] {
        let (ns, service) = service_key(exp);
        self.by_service
            .get(ns)
            .and_then(|m| m.get(service))
            .map_or(&[], Vec::as_slice)
    }

    /// Another started, unfinished experiment on the same service as `exp`: its `name.namespace`.
    pub fn claimed_by(&self, exp: &Experiment) -> Option<String> {
        self.claimed_among(self.id_of(exp), self.on_service(exp))
    }

    /// Like [`Store::claimed_by`], for experiment `me` among the experiments `on_service`.
    pub fn claimed_among(
        &self,
        me: Option<ExperimentId>,
        on_service: &[ExperimentId],
    ) -> Option<String> {
        on_service
            .iter()
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
    fn writes_to_a_checked_out_experiment_land_at_check_in() {
        let mut store = Store::new(false);
        let id = store.apply(experiment("a"), SimTime::ZERO);
        let exp = store.check_out(id).unwrap();
        assert!(store.get(id).is_none(), "out while reconciled");
        let status = ExperimentStatus {
            message: Some("written".into()),
            ..Default::default()
        };
        store.write_status(id, &status);
        store.add_finalizer(id);
        store.check_in(id, exp, Some(status));
        let e = store.get(id).unwrap();
        assert_eq!(e.status.message.as_deref(), Some("written"));
        assert!(e.has_finalizer());
    }

    #[test]
    fn a_decided_status_that_was_not_written_is_not_taken() {
        let mut store = Store::new(false);
        let id = store.apply(experiment("a"), SimTime::ZERO);
        let exp = store.check_out(id).unwrap();
        let unchanged = ExperimentStatus {
            message: Some("decided, never written".into()),
            ..Default::default()
        };
        store.check_in(id, exp, Some(unchanged));
        assert_eq!(store.get(id).unwrap().status.message, None);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "the status handed in is not the one written")]
    fn a_status_handed_in_that_differs_from_the_written_one_is_caught() {
        let mut store = Store::new(false);
        let id = store.apply(experiment("a"), SimTime::ZERO);
        let exp = store.check_out(id).unwrap();
        let written = ExperimentStatus {
            message: Some("written".into()),
            ..Default::default()
        };
        store.write_status(id, &written);
        store.check_in(id, exp, Some(ExperimentStatus::default()));
    }

    #[test]
    fn the_checked_out_experiment_is_known_without_a_lookup_but_not_a_copy() {
        let mut store = Store::new(false);
        store.apply(experiment("a"), SimTime::ZERO);
        let id = store.apply(experiment("b"), SimTime::ZERO);
        let exp = store.check_out(id).unwrap();
        assert_eq!(store.checked_out_id(&exp), Some(id));
        let copy = exp.clone();
        assert_eq!(store.checked_out_id(&copy), None);
        assert_eq!(store.id_of(&copy), Some(id), "a copy is found by name");
        store.check_in(id, exp, None);
        let exp = store.get(id).unwrap().clone();
        assert_eq!(store.checked_out_id(&exp), None);
    }

    #[test]
    fn the_last_finalizer_removed_while_checked_out_deletes_at_check_in() {
        let mut store = Store::new(false);
        let id = store.apply(experiment("a"), SimTime::ZERO);
        store.add_finalizer(id);
        store.get_mut(id).unwrap().metadata.deletion_timestamp = Some(SimTime::ZERO.to_datetime());
        let exp = store.check_out(id).unwrap();
        store.remove_finalizer(id);
        store.check_in(id, exp, None);
        assert!(store.get(id).is_none());
        assert_eq!(store.id("ns", "a"), None);
    }
}
