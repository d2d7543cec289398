//! The Kubernetes side: reads the referenced HTTPRoute, tells who holds it, and applies the
//! changed rule with server-side apply (field manager [`FIELD_MANAGER`]). Implements the
//! core's [`TrafficRouter`].

use async_trait::async_trait;
use iter8_core::action::RoutingAction;
use iter8_core::model::Experiment;
use iter8_core::observation::RoutingObservation;
use iter8_core::ports::{PortError, TrafficRouter};
use iter8_core::routing_labels::{Claim, claim, named_experiment, still_holds};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::error::GatewayError;
use crate::route::{self, FIELD_MANAGER, LABEL_EXPERIMENT, LABEL_ROLE, RouteTarget, Stage};
use crate::types::HTTPRoute;

/// Who holds a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// This experiment.
    This,
    /// Nobody that runs: no iter8 label, role `stable`, or an experiment that ended.
    Free,
    /// Another running experiment: its `name.namespace`.
    Other(String),
}

/// Routes an experiment's traffic by changing the weights of its referenced HTTPRoute.
#[derive(Clone)]
pub struct GatewayRouter {
    client: Client,
}

impl GatewayRouter {
    /// A router talking to the cluster through `client`.
    pub fn new(client: Client) -> GatewayRouter {
        GatewayRouter { client }
    }

    /// The referenced route; `None` when it does not exist.
    pub async fn get(&self, target: &RouteTarget) -> Result<Option<HTTPRoute>, GatewayError> {
        let api: Api<HTTPRoute> = Api::namespaced(self.client.clone(), &target.route_namespace);
        api.get_opt(&target.route_name)
            .await
            .map_err(|source| GatewayError::Kube {
                verb: "get",
                kind: "HTTPRoute",
                namespace: target.route_namespace.clone(),
                name: target.route_name.clone(),
                source: Box::new(source),
            })
    }

    /// What the route does now for the experiment. A missing route, or one without a rule for
    /// the experiment's Services, is observed as "no routing yet": applying then fails with the
    /// reason, which pauses the experiment with `RoutingRulesError`.
    pub async fn observe_routing(
        &self,
        exp: &Experiment,
    ) -> Result<RoutingObservation, GatewayError> {
        let target = RouteTarget::from_experiment(exp)?;
        let Some(found) = self.get(&target).await? else {
            return Ok(RoutingObservation::default());
        };
        Ok(match self.holder(&target, &found).await? {
            Holder::Other(other) => RoutingObservation {
                split: None,
                held_by: Some(other),
                ..Default::default()
            },
            Holder::This => RoutingObservation {
                split: route::served_split(&found, &target),
                held_by: None,
                ..Default::default()
            },
            Holder::Free => RoutingObservation::default(),
        })
    }

    /// Applies a routing action to the route and checks the route serves the wanted split.
    pub async fn apply_action(
        &self,
        exp: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), GatewayError> {
        let target = RouteTarget::from_experiment(exp)?;
        let found = self
            .get(&target)
            .await?
            .ok_or_else(|| GatewayError::NotFound {
                namespace: target.route_namespace.clone(),
                name: target.route_name.clone(),
            })?;
        if let Holder::Other(other) = self.holder(&target, &found).await? {
            return Err(GatewayError::HeldBy(other));
        }
        let mut stage = Stage::for_action(action);
        if matches!(action, RoutingAction::Initialize)
            && !self
                .service_exists(&target.services_namespace, &target.candidate)
                .await?
        {
            stage = Stage::initializing();
        }
        let changed = route::at_stage(&found, &target, &stage)?;
        let body = route::apply_body(&changed, &target, stage.role);
        let api: Api<HTTPRoute> = Api::namespaced(self.client.clone(), &target.route_namespace);
        // Forced: the user's manager owns spec.rules (an atomic list) from their own apply.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&target.route_name, &params, &Patch::Apply(&body))
            .await
            .map_err(|source| GatewayError::Kube {
                verb: "apply",
                kind: "HTTPRoute",
                namespace: target.route_namespace.clone(),
                name: target.route_name.clone(),
                source: Box::new(source),
            })?;
        let wanted = stage.split();
        let served = route::served_split(&applied, &target);
        if served != Some(wanted) {
            return Err(GatewayError::NotApplied {
                namespace: target.route_namespace.clone(),
                name: target.route_name.clone(),
                found: served.map_or("no split".to_string(), |s| {
                    format!("{}/{}", s.baseline, s.candidate)
                }),
                wanted: format!("{}/{}", wanted.baseline, wanted.candidate),
            });
        }
        Ok(())
    }

    /// Whether a Service exists.
    async fn service_exists(&self, namespace: &str, name: &str) -> Result<bool, GatewayError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map(|found| found.is_some())
            .map_err(|source| GatewayError::Kube {
                verb: "get",
                kind: "Service",
                namespace: namespace.to_string(),
                name: name.to_string(),
                source: Box::new(source),
            })
    }

    /// Who holds the route, from its iter8 labels.
    async fn holder(
        &self,
        target: &RouteTarget,
        found: &HTTPRoute,
    ) -> Result<Holder, GatewayError> {
        let labels = found.labels();
        let experiment = labels.get(LABEL_EXPERIMENT).map(String::as_str);
        let role = labels.get(LABEL_ROLE).map(String::as_str);
        Ok(match claim(experiment, role, &target.experiment) {
            Claim::Ours => Holder::This,
            Claim::Free => Holder::Free,
            Claim::Another(other) if self.is_running(other).await? => {
                Holder::Other(other.to_string())
            }
            Claim::Another(_) => Holder::Free,
        })
    }

    /// Whether the experiment named by an `iter8-tools/experiment` label still runs (exists and
    /// has not completed). A value that names no experiment counts as running.
    async fn is_running(&self, label_value: &str) -> Result<bool, GatewayError> {
        let Some((name, namespace)) = named_experiment(label_value) else {
            return Ok(true);
        };
        let gvk = GroupVersionKind::gvk("iter8.tools", "v1alpha1", iter8_core::model::KIND);
        let resource = ApiResource::from_gvk_with_plural(&gvk, "experiments");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let found = api
            .get_opt(name)
            .await
            .map_err(|source| GatewayError::Kube {
                verb: "get",
                kind: "Experiment",
                namespace: namespace.to_string(),
                name: name.to_string(),
                source: Box::new(source),
            })?;
        Ok(found.is_some_and(|exp| {
            still_holds(exp.data.pointer("/status/phase").and_then(|p| p.as_str()))
        }))
    }
}

#[async_trait]
impl TrafficRouter for GatewayRouter {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        Ok(self.observe_routing(experiment).await?)
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        Ok(self.apply_action(experiment, action).await?)
    }
}
