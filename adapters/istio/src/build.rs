//! Builds the VirtualService and DestinationRule of every routing stage, and reads the split a
//! VirtualService serves. Pure: no Kubernetes access.

use std::collections::BTreeMap;

use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::{Experiment, TargetKind, TrafficSplit};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::IstioError;
use crate::labels::{self, Role, SUBSET_BASELINE, SUBSET_CANDIDATE};
use crate::types::{
    Destination, DestinationRule, DestinationRuleSpec, HttpRoute, HttpRouteDestination,
    PortSelector, Subset, VirtualService, VirtualServiceSpec,
};

/// The gateway name that stands for all sidecars of the mesh.
pub const MESH_GATEWAY: &str = "mesh";
/// Suffix of the rules' names: `<host>.iter8-experiment`.
pub const NAME_SUFFIX: &str = "iter8-experiment";

/// A service's fully qualified host name in the cluster.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// One of the two versions, as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The Deployment's (or Service's) name.
    pub name: String,
    /// The host its destination names: the service FQDN (Deployment kind) or its own FQDN.
    pub host: String,
    /// Its pods' template labels (Deployment kind), once known.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Everything routing needs to know about an experiment, resolved from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTarget {
    /// The experiment's label value: `<name>.<namespace>`.
    pub experiment: String,
    /// Where the service, the versions and the rules live.
    pub namespace: String,
    /// Deployment or Service.
    pub kind: TargetKind,
    /// The primary host: the service FQDN, or (Service kind without a name) the first Gateway host.
    pub host: String,
    /// The name of the VirtualService and DestinationRule: `<host>.iter8-experiment`.
    pub name: String,
    /// The VirtualService's hosts.
    pub hosts: Vec<String>,
    /// The VirtualService's gateways: `mesh` and every Gateway of `hosts[]`.
    pub gateways: Vec<String>,
    /// The port every destination names, if set.
    pub port: Option<u32>,
    /// The current version.
    pub baseline: Version,
    /// The new version.
    pub candidate: Version,
}

impl RoutingTarget {
    /// Resolves the routing target of an experiment (labels of the versions still unknown).
    pub fn from_experiment(exp: &Experiment) -> Result<RoutingTarget, IstioError> {
        let ts = &exp.spec.target_service;
        let namespace = exp.target_namespace().to_string();
        let kind = ts.kind();
        let service = ts.name.as_deref().unwrap_or("").trim();
        let baseline = ts.baseline().trim();
        let candidate = ts.candidate().trim();
        if baseline.is_empty() {
            return Err(IstioError::MissingField { field: "baseline" });
        }
        if candidate.is_empty() {
            return Err(IstioError::MissingField { field: "candidate" });
        }
        if kind == TargetKind::Deployment && service.is_empty() {
            return Err(IstioError::MissingField { field: "name" });
        }
        let extra_hosts = ts
            .hosts
            .iter()
            .filter_map(|h| h.name.as_deref().map(str::trim))
            .filter(|h| !h.is_empty());
        let mut hosts = Vec::new();
        if !service.is_empty() {
            hosts.push(fqdn(service, &namespace));
        }
        for h in extra_hosts {
            push_unique(&mut hosts, h);
        }
        let Some(host) = hosts.first().cloned() else {
            return Err(IstioError::MissingField { field: "name" });
        };
        let mut gateways = vec![MESH_GATEWAY.to_string()];
        for g in ts.hosts.iter().filter_map(|h| h.gateway.as_deref()) {
            let g = g.trim();
            if !g.is_empty() {
                push_unique(&mut gateways, g);
            }
        }
        let port = match ts.port {
            None => None,
            Some(p) if (1..=65535).contains(&p) => Some(p as u32),
            Some(p) => return Err(IstioError::BadPort(p)),
        };
        let version = |name: &str| Version {
            name: name.to_string(),
            host: match kind {
                TargetKind::Service => fqdn(name, &namespace),
                _ => host.clone(),
            },
            labels: None,
        };
        Ok(RoutingTarget {
            experiment: labels::experiment_value(exp.name(), exp.namespace()),
            kind: kind.clone(),
            name: format!("{host}.{NAME_SUFFIX}"),
            baseline: version(baseline),
            candidate: version(candidate),
            namespace,
            host,
            hosts,
            gateways,
            port,
        })
    }

    /// The same target with the versions' pod-template labels set.
    pub fn with_labels(
        mut self,
        baseline: Option<BTreeMap<String, String>>,
        candidate: Option<BTreeMap<String, String>>,
    ) -> RoutingTarget {
        self.baseline.labels = baseline;
        self.candidate.labels = candidate;
        self
    }

    /// Whether routing uses subsets of one service (Deployment kind) and so a DestinationRule.
    pub fn uses_subsets(&self) -> bool {
        self.kind != TargetKind::Service
    }

    /// The value of the `iter8-tools/host` label.
    pub fn host_label(&self) -> String {
        labels::label_value(&self.host)
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// A stage of an experiment's routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Baseline 100, while the candidate is not there yet (role `initializing`).
    Initializing,
    /// Both versions with this split (role `progressing`); 100/0 when the candidate is added.
    Progressing(TrafficSplit),
    /// Done (role `stable`): all to the winner, or the split to both.
    Stable {
        /// Who keeps traffic.
        winner: Winner,
        /// The final split (used for [`Winner::Both`]).
        split: TrafficSplit,
    },
}

impl Stage {
    /// The stage a routing action asks for; `candidate_present` tells `Initialize` whether the
    /// candidate can be added at 0 already.
    pub fn for_action(action: &RoutingAction, candidate_present: bool) -> Stage {
        match action {
            RoutingAction::Initialize if candidate_present => {
                Stage::Progressing(TrafficSplit::ALL_BASELINE)
            }
            RoutingAction::Initialize => Stage::Initializing,
            RoutingAction::SetSplit(split) => Stage::Progressing(*split),
            RoutingAction::Finalize { winner, split } => Stage::Stable {
                winner: *winner,
                split: *split,
            },
        }
    }

    /// The role label of the stage.
    pub fn role(&self) -> Role {
        match self {
            Stage::Initializing => Role::Initializing,
            Stage::Progressing(_) => Role::Progressing,
            Stage::Stable { .. } => Role::Stable,
        }
    }

    /// The split the stage serves, with weights made whole: integers summing to 100.
    pub fn split(&self) -> TrafficSplit {
        match self {
            Stage::Initializing => TrafficSplit::ALL_BASELINE,
            Stage::Progressing(split) => normalize(*split),
            Stage::Stable {
                winner: Winner::Baseline,
                ..
            } => TrafficSplit::ALL_BASELINE,
            Stage::Stable {
                winner: Winner::Candidate,
                ..
            } => TrafficSplit::ALL_CANDIDATE,
            Stage::Stable {
                winner: Winner::Both,
                split,
            } => normalize(*split),
        }
    }

    /// Which versions get a destination (and a subset): `(baseline, candidate)`.
    pub fn versions(&self) -> (bool, bool) {
        match self {
            Stage::Initializing
            | Stage::Stable {
                winner: Winner::Baseline,
                ..
            } => (true, false),
            Stage::Stable {
                winner: Winner::Candidate,
                ..
            } => (false, true),
            Stage::Progressing(_)
            | Stage::Stable {
                winner: Winner::Both,
                ..
            } => (true, true),
        }
    }
}

/// Makes a split whole: the candidate keeps its share (at most 100), the baseline gets the rest.
pub fn normalize(split: TrafficSplit) -> TrafficSplit {
    TrafficSplit::with_candidate(split.candidate)
}

/// The objects iter8 applies at one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingObjects {
    /// The VirtualService.
    pub virtual_service: VirtualService,
    /// The DestinationRule (Deployment kind only).
    pub destination_rule: Option<DestinationRule>,
}

/// The labels of the rules at a stage; `init` adds `iter8-tools/init: "True"`. Stable rules
/// carry only the host and the role, as iter8 v0.2.1 leaves them: they belong to no experiment
/// and are no longer iter8's to delete, so the next experiment on the host reuses them.
pub fn rule_labels(target: &RoutingTarget, role: Role, init: bool) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (labels::HOST.to_string(), target.host_label()),
        (labels::ROLE.to_string(), role.as_str().to_string()),
    ]);
    if role == Role::Stable {
        return l;
    }
    l.insert(labels::EXPERIMENT.to_string(), target.experiment.clone());
    if init {
        l.insert(labels::INIT.to_string(), labels::INIT_TRUE.to_string());
    }
    l
}

fn meta(target: &RoutingTarget, name: &str, role: Role, init: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(target.namespace.clone()),
        labels: Some(rule_labels(target, role, init)),
        ..ObjectMeta::default()
    }
}

/// Builds the VirtualService of a stage, named `name` (normally [`RoutingTarget::name`]).
pub fn virtual_service(
    target: &RoutingTarget,
    stage: &Stage,
    name: &str,
    init: bool,
) -> VirtualService {
    let mut vs = VirtualService::new(
        name,
        VirtualServiceSpec {
            hosts: target.hosts.clone(),
            gateways: target.gateways.clone(),
            http: vec![HttpRoute {
                route: destinations(target, stage),
                ..HttpRoute::default()
            }],
            ..VirtualServiceSpec::default()
        },
    );
    vs.metadata = meta(target, name, stage.role(), init);
    vs
}

/// The weighted destinations of the versions a stage routes to.
pub fn destinations(target: &RoutingTarget, stage: &Stage) -> Vec<HttpRouteDestination> {
    let split = stage.split();
    let (with_baseline, with_candidate) = stage.versions();
    let port = target.port.map(|n| PortSelector { number: Some(n) });
    let subsets = target.uses_subsets();
    let destination = |version: &Version, subset: &str, weight: u32| HttpRouteDestination {
        destination: Destination {
            host: version.host.clone(),
            subset: subsets.then(|| subset.to_string()),
            port,
        },
        weight: Some(i64::from(weight)),
    };
    let mut route = Vec::new();
    if with_baseline {
        let weight = if with_candidate { split.baseline } else { 100 };
        route.push(destination(&target.baseline, SUBSET_BASELINE, weight));
    }
    if with_candidate {
        let weight = if with_baseline { split.candidate } else { 100 };
        route.push(destination(&target.candidate, SUBSET_CANDIDATE, weight));
    }
    route
}

/// Builds the DestinationRule of a stage (Deployment kind): one subset per routed version.
pub fn destination_rule(
    target: &RoutingTarget,
    stage: &Stage,
    name: &str,
    init: bool,
) -> Result<DestinationRule, IstioError> {
    let (with_baseline, with_candidate) = stage.versions();
    let subset = |version: &Version, subset: &str| -> Result<Subset, IstioError> {
        let labels = version
            .labels
            .clone()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| IstioError::MissingLabels(version.name.clone()))?;
        Ok(Subset {
            name: subset.to_string(),
            labels,
        })
    };
    let mut subsets = Vec::new();
    if with_baseline {
        subsets.push(subset(&target.baseline, SUBSET_BASELINE)?);
    }
    if with_candidate {
        subsets.push(subset(&target.candidate, SUBSET_CANDIDATE)?);
    }
    let mut dr = DestinationRule::new(
        name,
        DestinationRuleSpec {
            host: target.host.clone(),
            subsets,
        },
    );
    dr.metadata = meta(target, name, stage.role(), init);
    Ok(dr)
}

/// Builds both objects of a stage under the default name; `init` marks them iter8-created.
pub fn build(
    target: &RoutingTarget,
    stage: &Stage,
    init: bool,
) -> Result<RoutingObjects, IstioError> {
    let destination_rule = if target.uses_subsets() {
        Some(destination_rule(target, stage, &target.name, init)?)
    } else {
        None
    };
    Ok(RoutingObjects {
        virtual_service: virtual_service(target, stage, &target.name, init),
        destination_rule,
    })
}

/// The split a VirtualService serves between the target's versions, read from its first HTTP
/// route: destinations are matched by subset (Deployment kind) or host (Service kind); an absent
/// weight counts as 100 for a lone destination and 0 otherwise; other destinations are ignored.
/// `None` when neither version has a destination.
pub fn served_split(target: &RoutingTarget, vs: &VirtualService) -> Option<TrafficSplit> {
    route_split(target, vs.spec.http.first()?)
}

/// The split one HTTP route serves between the target's versions (see [`served_split`]).
pub fn route_split(target: &RoutingTarget, http: &HttpRoute) -> Option<TrafficSplit> {
    let route = &http.route;
    let lone = route.len() == 1;
    let mut baseline = None;
    let mut candidate = None;
    for dest in route {
        let weight = dest.weight.unwrap_or(if lone { 100 } else { 0 });
        let weight = u32::try_from(weight.clamp(0, 100)).unwrap_or(0);
        let which = if target.uses_subsets() {
            if !same_host(&dest.destination.host, &target.host, &target.namespace) {
                None
            } else {
                match dest.destination.subset.as_deref() {
                    Some(SUBSET_BASELINE) => Some(&mut baseline),
                    Some(SUBSET_CANDIDATE) => Some(&mut candidate),
                    _ => None,
                }
            }
        } else if same_host(
            &dest.destination.host,
            &target.baseline.host,
            &target.namespace,
        ) {
            Some(&mut baseline)
        } else if same_host(
            &dest.destination.host,
            &target.candidate.host,
            &target.namespace,
        ) {
            Some(&mut candidate)
        } else {
            None
        };
        if let Some(slot) = which {
            *slot = Some(slot.unwrap_or(0) + weight);
        }
    }
    if baseline.is_none() && candidate.is_none() {
        return None;
    }
    Some(TrafficSplit {
        baseline: baseline.unwrap_or(0),
        candidate: candidate.unwrap_or(0),
    })
}

/// Whether a destination host names `fqdn` (Istio accepts `name`, `name.ns`, `name.ns.svc`...).
pub fn same_host(host: &str, fqdn: &str, namespace: &str) -> bool {
    if host == fqdn {
        return true;
    }
    let short = fqdn.strip_suffix(".svc.cluster.local").unwrap_or(fqdn);
    let Some(name) = short.strip_suffix(&format!(".{namespace}")) else {
        return false;
    };
    host == name || host == short || host == format!("{short}.svc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_host_names_match() {
        let f = fqdn("reviews", "ns");
        assert!(same_host("reviews", &f, "ns"));
        assert!(same_host("reviews.ns", &f, "ns"));
        assert!(same_host("reviews.ns.svc", &f, "ns"));
        assert!(!same_host("ratings", &f, "ns"));
        assert!(!same_host("reviews.other", &f, "ns"));
    }

    #[test]
    fn normalize_gives_whole_weights() {
        let s = normalize(TrafficSplit {
            baseline: 7,
            candidate: 250,
        });
        assert_eq!(s, TrafficSplit::ALL_CANDIDATE);
    }
}
