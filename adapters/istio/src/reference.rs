//! `spec.routingReference` to a VirtualService the user owns: iter8 works on one of its HTTP
//! routes (the first with a destination whose host is the target service) and leaves the
//! user's other routes, matches and hosts as they are. Pure: no Kubernetes access.

use iter8_core::model::{RoutingReference, TargetKind};

use crate::build::{self, RoutingTarget, Stage, same_host};
use crate::error::IstioError;
use crate::labels;
use crate::types::{HttpRouteDestination, VirtualService};

/// `"True"` on a VirtualService the user owns (iter8 never deletes it).
pub const EXTERNAL: &str = "iter8-tools/external";

/// The referenced VirtualService's namespace and name; other kinds are refused.
pub fn referenced(
    reference: &RoutingReference,
    experiment_namespace: &str,
) -> Result<(String, String), IstioError> {
    let supported =
        reference.kind() == "VirtualService" && reference.group() == crate::types::GROUP;
    if !supported {
        return Err(IstioError::ReferenceNotSupported(format!(
            "{} {}",
            reference.api_version.as_deref().unwrap_or(""),
            reference.kind()
        )));
    }
    let namespace = reference
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| experiment_namespace.to_string());
    Ok((namespace, reference.name().to_string()))
}

/// Whether a destination is the target service's (Deployment kind) or one of its versions'
/// (Service kind).
fn matches_target(target: &RoutingTarget, dest: &HttpRouteDestination) -> bool {
    let host = &dest.destination.host;
    match target.kind {
        TargetKind::Service => {
            same_host(host, &target.baseline.host, &target.namespace)
                || same_host(host, &target.candidate.host, &target.namespace)
        }
        _ => same_host(host, &target.host, &target.namespace),
    }
}

/// The index of the HTTP route iter8 works on. When taking the VirtualService over (`held`
/// false), a route with more than one destination for the target is refused, since iter8
/// could not tell which one is the baseline.
pub fn target_route(
    vs: &VirtualService,
    target: &RoutingTarget,
    held: bool,
) -> Result<usize, IstioError> {
    let name = || {
        format!(
            "{}/{}",
            vs.metadata
                .namespace
                .as_deref()
                .unwrap_or(&target.namespace),
            vs.metadata.name.as_deref().unwrap_or("")
        )
    };
    if vs.spec.http.is_empty() {
        return Err(IstioError::EmptyHttpRoute(name()));
    }
    for (index, http) in vs.spec.http.iter().enumerate() {
        let matching = http
            .route
            .iter()
            .filter(|d| matches_target(target, d))
            .count();
        if matching == 0 {
            continue;
        }
        if matching > 1 && !held {
            return Err(IstioError::MultipleHostMatching {
                virtual_service: name(),
                index,
                host: target.host.clone(),
            });
        }
        return Ok(index);
    }
    Err(IstioError::NoHostMatchingRoute {
        virtual_service: name(),
        host: target.host.clone(),
    })
}

/// The VirtualService as iter8 leaves it at `stage`: the target route's destinations are the
/// stage's, and iter8's labels (plus `iter8-tools/external: "True"`) are added to the user's.
pub fn at_stage(
    vs: &VirtualService,
    target: &RoutingTarget,
    stage: &Stage,
    held: bool,
) -> Result<VirtualService, IstioError> {
    let index = target_route(vs, target, held)?;
    let mut out = vs.clone();
    out.spec.http[index].route = build::destinations(target, stage);
    let user_labels = out.metadata.labels.get_or_insert_default();
    user_labels.extend(build::rule_labels(target, stage.role(), false));
    user_labels.insert(EXTERNAL.to_string(), labels::INIT_TRUE.to_string());
    Ok(out)
}

/// The object iter8 sends with server-side apply: the name, iter8's labels, the
/// `resourceVersion` it was computed from (a concurrent change is refused, not overwritten) and
/// `spec.http` (applied whole). Hosts, gateways and the user's labels stay the user's.
pub fn apply_body(
    changed: &VirtualService,
    target: &RoutingTarget,
    stage: &Stage,
) -> VirtualService {
    let name = changed.metadata.name.clone().unwrap_or_default();
    let mut body = VirtualService::new(
        &name,
        crate::types::VirtualServiceSpec {
            http: changed.spec.http.clone(),
            ..Default::default()
        },
    );
    body.metadata.namespace = changed.metadata.namespace.clone();
    let mut iter8_labels = build::rule_labels(target, stage.role(), false);
    iter8_labels.insert(EXTERNAL.to_string(), labels::INIT_TRUE.to_string());
    body.metadata.labels = Some(iter8_labels);
    body.metadata.resource_version = changed.metadata.resource_version.clone();
    body
}
