//! Computes the route iter8 applies at each stage and reads the split a route serves. Pure: no
//! Kubernetes access.
//!
//! iter8 works on one rule: the first of `spec.rules` with a backendRef to the baseline or the
//! candidate Service. In that rule it sets the two versions' weights, adds the candidate's
//! backendRef (a copy of the baseline's: same port, namespace and filters) and, at the end,
//! removes the loser's. Every other rule, every match, filter, parentRef and hostname, and
//! every other backendRef stays as the user wrote it.

use std::collections::BTreeMap;

use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::{Experiment, TargetKind, TrafficSplit};

use crate::error::GatewayError;
use crate::types::{HTTPBackendRef, HTTPRoute, HTTPRouteRule, HTTPRouteSpec};

/// Names the experiment holding the route: `<experiment>.<namespace>`.
pub const LABEL_EXPERIMENT: &str = iter8_core::routing_labels::EXPERIMENT;
/// The route's stage: [`Role`].
pub const LABEL_ROLE: &str = iter8_core::routing_labels::ROLE;
/// `"True"` on routes the user owns (iter8 never deletes them).
pub const LABEL_EXTERNAL: &str = "iter8-tools/external";
/// The field manager of iter8's server-side applies to HTTPRoutes.
pub const FIELD_MANAGER: &str = "iter8-gateway-api";

pub use iter8_core::routing_labels::Role;

/// What the route's rule serves at a stage: each version's weight, `None` for no backendRef.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The baseline's weight.
    pub baseline: Option<u32>,
    /// The candidate's weight.
    pub candidate: Option<u32>,
    /// The role label.
    pub role: Role,
}

impl Stage {
    /// The stage a routing action asks for. Weights are whole percentages summing to 100.
    pub fn for_action(action: &RoutingAction) -> Stage {
        let both = |split: TrafficSplit, role| {
            let split = TrafficSplit::with_candidate(split.candidate);
            Stage {
                baseline: Some(split.baseline),
                candidate: Some(split.candidate),
                role,
            }
        };
        match action {
            RoutingAction::Initialize => both(TrafficSplit::ALL_BASELINE, Role::Progressing),
            RoutingAction::SetSplit(split) => both(*split, Role::Progressing),
            RoutingAction::Finalize { winner, split } => match winner {
                Winner::Baseline => Stage {
                    baseline: Some(100),
                    candidate: None,
                    role: Role::Stable,
                },
                Winner::Candidate => Stage {
                    baseline: None,
                    candidate: Some(100),
                    role: Role::Stable,
                },
                Winner::Both => both(*split, Role::Stable),
            },
        }
    }

    /// Before the candidate's Service exists: all weight to the baseline, and no backendRef to
    /// a Service that is not there (an `Initialize` while the experiment waits for its
    /// candidate).
    pub fn initializing() -> Stage {
        Stage {
            baseline: Some(100),
            candidate: None,
            role: Role::Initializing,
        }
    }

    /// The split the stage serves.
    pub fn split(&self) -> TrafficSplit {
        TrafficSplit {
            baseline: self.baseline.unwrap_or(0),
            candidate: self.candidate.unwrap_or(0),
        }
    }
}

/// Everything routing needs to know about an experiment, resolved from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// The experiment's label value: `<name>.<namespace>`.
    pub experiment: String,
    /// The HTTPRoute's namespace.
    pub route_namespace: String,
    /// The HTTPRoute's name.
    pub route_name: String,
    /// Where the baseline and candidate Services live.
    pub services_namespace: String,
    /// The baseline Service.
    pub baseline: String,
    /// The candidate Service.
    pub candidate: String,
    /// The Service port both backendRefs name, if set (otherwise the baseline's port is kept).
    pub port: Option<i32>,
}

impl RouteTarget {
    /// Resolves the routing target of an experiment with an HTTPRoute `routingReference`.
    pub fn from_experiment(exp: &Experiment) -> Result<RouteTarget, GatewayError> {
        let reference = exp
            .spec
            .routing_reference
            .as_ref()
            .filter(|r| r.is_http_route())
            .ok_or(GatewayError::NoReference)?;
        let ts = &exp.spec.target_service;
        if ts.kind() != TargetKind::Service {
            return Err(GatewayError::NotServiceKind);
        }
        let required = |value: &str, field| {
            let value = value.trim();
            if value.is_empty() {
                Err(GatewayError::MissingField(field))
            } else {
                Ok(value.to_string())
            }
        };
        let port = match ts.port {
            None => None,
            Some(p) => Some(
                i32::try_from(p)
                    .ok()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or(GatewayError::BadPort(p))?,
            ),
        };
        Ok(RouteTarget {
            experiment: label_value(&format!("{}.{}", exp.name(), exp.namespace())),
            route_namespace: reference
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| exp.namespace().to_string()),
            route_name: required(reference.name(), "spec.routingReference.name")?,
            services_namespace: exp.target_namespace().to_string(),
            baseline: required(ts.baseline(), "spec.targetService.baseline")?,
            candidate: required(ts.candidate(), "spec.targetService.candidate")?,
            port,
        })
    }

    fn is_baseline(&self, backend: &HTTPBackendRef) -> bool {
        backend.is_service(
            &self.baseline,
            &self.services_namespace,
            &self.route_namespace,
        )
    }

    fn is_candidate(&self, backend: &HTTPBackendRef) -> bool {
        backend.is_service(
            &self.candidate,
            &self.services_namespace,
            &self.route_namespace,
        )
    }
}

/// Makes `text` a valid label value: at most 63 characters of `[A-Za-z0-9-_.]`, starting and
/// ending with an alphanumeric.
fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The index of the rule iter8 works on: the first with a backendRef to the baseline or the
/// candidate. A rule naming either version twice is refused, since iter8 could not tell which
/// backendRef to change.
pub fn target_rule(route: &HTTPRoute, target: &RouteTarget) -> Result<usize, GatewayError> {
    let rules = &route.spec.rules;
    if rules.is_empty() {
        return Err(GatewayError::NoRules {
            namespace: target.route_namespace.clone(),
            name: target.route_name.clone(),
        });
    }
    for (index, rule) in rules.iter().enumerate() {
        let count = |is: &dyn Fn(&HTTPBackendRef) -> bool| {
            rule.backend_refs.iter().filter(|b| is(b)).count()
        };
        let baseline = count(&|b| target.is_baseline(b));
        let candidate = count(&|b| target.is_candidate(b));
        if baseline + candidate == 0 {
            continue;
        }
        for (service, n) in [(&target.baseline, baseline), (&target.candidate, candidate)] {
            if n > 1 {
                return Err(GatewayError::MultipleBackendRefs {
                    namespace: target.route_namespace.clone(),
                    name: target.route_name.clone(),
                    rule: index,
                    service: service.clone(),
                });
            }
        }
        return Ok(index);
    }
    Err(GatewayError::NoMatchingRule {
        namespace: target.route_namespace.clone(),
        name: target.route_name.clone(),
        baseline: target.baseline.clone(),
        candidate: target.candidate.clone(),
    })
}

/// The split the route's target rule serves between the two versions, in percent of their
/// combined weight (Gateway API weights are relative; an absent one is 1). Other backendRefs of
/// the rule are not counted. `None` when no rule routes to either version.
pub fn served_split(route: &HTTPRoute, target: &RouteTarget) -> Option<TrafficSplit> {
    let rule = &route.spec.rules[target_rule(route, target).ok()?];
    let weight = |is: &dyn Fn(&HTTPBackendRef) -> bool| -> u64 {
        rule.backend_refs
            .iter()
            .filter(|b| is(b))
            .map(|b| u64::try_from(b.weight()).unwrap_or(0))
            .sum()
    };
    let baseline = weight(&|b| target.is_baseline(b));
    let candidate = weight(&|b| target.is_candidate(b));
    let total = baseline + candidate;
    if total == 0 {
        return Some(TrafficSplit {
            baseline: 0,
            candidate: 0,
        });
    }
    // Rounded to the nearest whole percent; the baseline gets the rest.
    let candidate = u32::try_from((candidate * 100 + total / 2) / total).unwrap_or(100);
    Some(TrafficSplit::with_candidate(candidate))
}

/// The route as iter8 leaves it at `stage`: the target rule's weights set, the candidate's
/// backendRef added or the loser's removed, and iter8's labels on the route. Everything else is
/// the input's.
pub fn at_stage(
    route: &HTTPRoute,
    target: &RouteTarget,
    stage: &Stage,
) -> Result<HTTPRoute, GatewayError> {
    let index = target_rule(route, target)?;
    let mut out = route.clone();
    set_weights(&mut out.spec.rules[index], target, stage);
    let labels = out.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(iter8_labels(target, stage.role));
    Ok(out)
}

/// The labels iter8 puts on a route it works on.
pub fn iter8_labels(target: &RouteTarget, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_EXPERIMENT.to_string(), target.experiment.clone()),
        (LABEL_ROLE.to_string(), role.as_str().to_string()),
        (LABEL_EXTERNAL.to_string(), "True".to_string()),
    ])
}

fn set_weights(rule: &mut HTTPRouteRule, target: &RouteTarget, stage: &Stage) {
    let versions: [(&str, Option<u32>); 2] = [
        (&target.baseline, stage.baseline),
        (&target.candidate, stage.candidate),
    ];
    // A new backendRef copies an existing one of the versions (port, namespace, filters), so
    // the candidate is reached as the baseline is.
    let template = rule
        .backend_refs
        .iter()
        .position(|b| target.is_baseline(b) || target.is_candidate(b));
    for (service, weight) in versions {
        let Some(weight) = weight else { continue };
        let weight = i32::try_from(weight).unwrap_or(i32::MAX);
        let found = rule.backend_refs.iter().position(|b| {
            b.is_service(service, &target.services_namespace, &target.route_namespace)
        });
        let index = match (found, template) {
            (Some(i), _) => i,
            (None, Some(t)) => {
                let mut copy = rule.backend_refs[t].clone();
                copy.name = service.to_string();
                rule.backend_refs.insert(t + 1, copy);
                t + 1
            }
            // target_rule found a backendRef to a version, so there is a template.
            (None, None) => continue,
        };
        let backend = &mut rule.backend_refs[index];
        backend.weight = Some(weight);
        if target.port.is_some() {
            backend.port = target.port;
        }
    }
    for (service, weight) in versions {
        if weight.is_none() {
            rule.backend_refs.retain(|b| {
                !b.is_service(service, &target.services_namespace, &target.route_namespace)
            });
        }
    }
}

/// The object iter8 sends with server-side apply: the route's name, iter8's labels, the
/// `resourceVersion` it was computed from (so a concurrent change by the user is refused, not
/// overwritten) and `spec.rules` (an atomic list: it is applied whole). Nothing else is sent,
/// so parentRefs, hostnames and the user's labels stay the user's.
pub fn apply_body(changed: &HTTPRoute, target: &RouteTarget, role: Role) -> HTTPRoute {
    let mut body = HTTPRoute::new(
        &target.route_name,
        HTTPRouteSpec {
            rules: changed.spec.rules.clone(),
            ..HTTPRouteSpec::default()
        },
    );
    body.metadata.namespace = Some(target.route_namespace.clone());
    body.metadata.labels = Some(iter8_labels(target, role));
    body.metadata.resource_version = changed.metadata.resource_version.clone();
    body
}
