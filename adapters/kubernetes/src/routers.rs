//! The operator's choice of router per experiment: a Gateway API router for an experiment whose
//! `spec.routingReference` names an HTTPRoute, the default (Istio) router for every other one.
//! Both are given as the core's [`TrafficRouter`], so this adapter depends on neither.

use std::sync::Arc;

use async_trait::async_trait;
use iter8_core::action::RoutingAction;
use iter8_core::model::Experiment;
use iter8_core::observation::RoutingObservation;
use iter8_core::ports::{PortError, TrafficRouter};

/// Routes each experiment with the router its `spec.routingReference` asks for.
#[derive(Clone)]
pub struct ByReference {
    /// Experiments without a reference, or with one to a VirtualService (Istio).
    pub default: Arc<dyn TrafficRouter>,
    /// Experiments whose reference names a Gateway API HTTPRoute.
    pub http_route: Arc<dyn TrafficRouter>,
}

impl ByReference {
    /// The router for an experiment.
    pub fn router_for(&self, experiment: &Experiment) -> &dyn TrafficRouter {
        let http_route = experiment
            .spec
            .routing_reference
            .as_ref()
            .is_some_and(|r| r.is_http_route());
        if http_route {
            &*self.http_route
        } else {
            &*self.default
        }
    }
}

#[async_trait]
impl TrafficRouter for ByReference {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        self.router_for(experiment).observe(experiment).await
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        self.router_for(experiment).apply(experiment, action).await
    }
}
