//! What adapters observe about the world before a decision.

use serde::{Deserialize, Serialize};

use crate::model::TrafficSplit;

/// Which of the experiment's targets exist.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Targets {
    /// The Service exists (always true for `Service` kind without a `name`).
    pub service: bool,
    /// The baseline Deployment (or Service) exists.
    pub baseline: bool,
    /// The candidate Deployment (or Service) exists.
    pub candidate: bool,
    /// Another running experiment already works on these targets: its `name.namespace`.
    pub claimed_by: Option<String>,
}

impl Targets {
    /// All targets present, none claimed.
    pub fn all_present() -> Self {
        Targets {
            service: true,
            baseline: true,
            candidate: true,
            claimed_by: None,
        }
    }
}

/// What the routing layer currently does for the experiment's service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoutingObservation {
    /// The split currently served, when the rules are this experiment's (or free stable rules).
    pub split: Option<TrafficSplit>,
    /// Another running experiment holds the routing rules: its `name.namespace`.
    pub held_by: Option<String>,
}

/// Everything observed for one decision.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observations {
    /// Which targets exist.
    pub targets: Targets,
    /// What routing does now.
    pub routing: RoutingObservation,
}
