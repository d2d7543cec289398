//! What the engine asks adapters to do.

use serde::{Deserialize, Serialize};

use crate::model::TrafficSplit;

/// Which version ends up serving when routing is made stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// All traffic to the baseline.
    Baseline,
    /// All traffic to the candidate.
    Candidate,
    /// Keep both with the split as it ended (`onSuccess: both`).
    Both,
}

/// A change to routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingAction {
    /// Create (or take over stable) rules: baseline 100, candidate added at 0.
    Initialize,
    /// Serve this split.
    SetSplit(TrafficSplit),
    /// Make routing stable: `split` to the versions that remain, role `stable`.
    Finalize {
        /// Who keeps traffic.
        winner: Winner,
        /// The final split.
        split: TrafficSplit,
    },
}

/// A Kubernetes Event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Progress.
    Normal,
    /// Failures and errors.
    Warning,
}

/// An event to record on the experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// The reason (`IterationUpdate`, `ExperimentFailed`, ...).
    pub reason: String,
    /// The message.
    pub message: String,
}

/// Something the driver must do after a decision, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Put iter8's finalizer on the experiment.
    AddFinalizer,
    /// Change routing.
    Route(RoutingAction),
    /// Delete the losing version (`cleanup: delete`): its name.
    DeleteTarget(String),
    /// Take iter8's finalizer off (deletion may proceed).
    RemoveFinalizer,
}
