//! The in-memory stand-ins for the Kubernetes API: experiments with their status, and events.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use iter8_core::action::Event;
use iter8_core::model::{Experiment, ExperimentStatus, FINALIZER};
use iter8_core::ports::{EventRecorder, ExperimentStore, PortError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Experiments by name, in the order they were applied.
#[derive(Default)]
pub struct MemoryStore {
    experiments: Mutex<Vec<Experiment>>,
}

impl MemoryStore {
    /// Adds (or replaces) an experiment.
    pub fn apply(&self, experiment: Experiment) {
        let mut all = lock(&self.experiments);
        all.retain(|e| e.name() != experiment.name());
        all.push(experiment);
    }

    /// An experiment by name.
    pub fn get(&self, name: &str) -> Option<Experiment> {
        lock(&self.experiments)
            .iter()
            .find(|e| e.name() == name)
            .cloned()
    }

    /// All experiments, in the order applied.
    pub fn all(&self) -> Vec<Experiment> {
        lock(&self.experiments).clone()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Experiment)) -> Result<(), PortError> {
        let mut all = lock(&self.experiments);
        let exp = all
            .iter_mut()
            .find(|e| e.name() == name)
            .ok_or_else(|| PortError::new(format!("experiments \"{name}\" not found")))?;
        f(exp);
        Ok(())
    }
}

#[async_trait]
impl ExperimentStore for MemoryStore {
    async fn write_status(
        &self,
        experiment: &Experiment,
        status: &ExperimentStatus,
    ) -> Result<(), PortError> {
        self.update(experiment.name(), |e| e.status = status.clone())
    }

    async fn add_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        self.update(experiment.name(), |e| {
            if !e.has_finalizer() {
                e.metadata.finalizers.push(FINALIZER.to_string());
            }
        })
    }

    async fn remove_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        self.update(experiment.name(), |e| {
            e.metadata.finalizers.retain(|f| f != FINALIZER)
        })
    }
}

/// Events recorded, with the experiment's name.
#[derive(Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<(String, Event)>>,
}

impl MemoryEvents {
    /// Everything recorded so far.
    pub fn all(&self) -> Vec<(String, Event)> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl EventRecorder for MemoryEvents {
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError> {
        lock(&self.events).push((experiment.name().to_string(), event.clone()));
        Ok(())
    }
}
