//! What adapters observe about the world before a decision.

use serde::{Deserialize, Serialize};

use crate::model::{Experiment, TrafficSplit};

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
    /// Which of these targets that other experiment works on (`None`: the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_target: Option<ClaimedTarget>,
}

/// One of an experiment's targets, as iter8 v0.2.1 names it when another experiment has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimedTarget {
    /// The Service being rolled.
    Service,
    /// The baseline Deployment (or Service).
    Baseline,
    /// The candidate Deployment (or Service).
    Candidate,
}

impl Targets {
    /// All targets present, none claimed.
    pub fn all_present() -> Self {
        Targets {
            service: true,
            baseline: true,
            candidate: true,
            claimed_by: None,
            claimed_target: None,
        }
    }

    /// While another experiment works on these targets, v0.2.1's `TargetsNotFound` text:
    /// `Service reviews.default is being involved in other experiment` (or its
    /// `Baseline <name>.<ns>` / `Candidate <name>.<ns>` forms).
    pub fn claim_text(&self, exp: &Experiment) -> Option<String> {
        self.claimed_by.as_ref()?;
        let ts = &exp.spec.target_service;
        let (what, name) = match self.claimed_target.unwrap_or(ClaimedTarget::Service) {
            ClaimedTarget::Service => ("Service", ts.name.as_deref().unwrap_or_default()),
            ClaimedTarget::Baseline => ("Baseline", ts.baseline()),
            ClaimedTarget::Candidate => ("Candidate", ts.candidate()),
        };
        Some(format!(
            "{what} {name}.{} is being involved in other experiment",
            exp.target_namespace()
        ))
    }
}

/// What the routing layer currently does for the experiment's service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoutingObservation {
    /// The split currently served, when the rules are this experiment's (or free stable rules).
    pub split: Option<TrafficSplit>,
    /// Another running experiment holds the routing rules: its `name.namespace`.
    pub held_by: Option<String>,
    /// Routing objects this experiment's routing needs that do not exist (`Kind ns/name`),
    /// reported by routers with more than one object (Istio's DestinationRule beside its
    /// VirtualService). A started experiment puts them back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Everything observed for one decision.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observations {
    /// Which targets exist.
    pub targets: Targets,
    /// What routing does now.
    pub routing: RoutingObservation,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment() -> Experiment {
        let text = include_str!("../../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml");
        crate::manifest::parse_experiments(text).unwrap()[0]
            .clone()
            .unwrap()
            .experiment
    }

    #[test]
    fn claim_text_names_the_shared_target_as_v021_does() {
        let exp = experiment();
        let claimed = |target| Targets {
            claimed_by: Some("other.bookinfo-iter8".into()),
            claimed_target: target,
            ..Targets::all_present()
        };
        assert_eq!(Targets::all_present().claim_text(&exp), None);
        assert_eq!(
            claimed(None).claim_text(&exp).as_deref(),
            Some("Service reviews.default is being involved in other experiment")
        );
        assert_eq!(
            claimed(Some(ClaimedTarget::Baseline))
                .claim_text(&exp)
                .as_deref(),
            Some("Baseline reviews-v2.default is being involved in other experiment")
        );
        assert_eq!(
            claimed(Some(ClaimedTarget::Candidate))
                .claim_text(&exp)
                .as_deref(),
            Some("Candidate reviews-v3.default is being involved in other experiment")
        );
    }
}
