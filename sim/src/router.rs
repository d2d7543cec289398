//! The simulated routing layer: one set of rules per service host (what Istio's
//! VirtualService and DestinationRule hold), with weighted destinations, the experiment that
//! owns them and their role.

use iter8_core::action::{RoutingAction, Winner};
use iter8_core::observation::RoutingObservation;
use iter8_core::{Experiment, TargetKind, TrafficSplit};

use rustc_hash::FxHashMap;

/// The gateway name that stands for traffic inside the mesh.
pub const MESH: &str = "mesh";

/// A rules set's role, as iter8 labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Held by a running experiment.
    Progressing,
    /// Left by a completed experiment: free for the next one.
    Stable,
}

/// One weighted destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The Service traffic goes to.
    pub service: String,
    /// The Deployment (subset) within it; `None`: every pod the Service selects.
    pub workload: Option<String>,
    /// The weight (percent).
    pub weight: u32,
}

/// The routing rules of one service host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The namespace of the rules and their destinations.
    pub namespace: String,
    /// The hosts routed (the service's FQDN and `hosts[].name`).
    pub hosts: Vec<String>,
    /// The gateways the rules apply to (`mesh` and `hosts[].gateway`).
    pub gateways: Vec<String>,
    /// The destinations.
    pub destinations: Vec<Destination>,
    /// The experiment (`name.namespace`) that created or last took over the rules.
    pub owner: String,
    /// Whether an experiment is running on them.
    pub role: Role,
}

/// A routing change that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// Another running experiment holds the rules.
    #[error("routing rules of {host} are held by experiment {owner}")]
    Held {
        /// The rules' host.
        host: String,
        /// Who holds them.
        owner: String,
    },
    /// The experiment asked to change rules that do not exist.
    #[error("no routing rules for {0}")]
    Missing(String),
    /// The experiment names no service and no host.
    #[error("the experiment names neither a service nor a host")]
    NoHost,
}

/// A Service's in-cluster name.
pub fn fqdn(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}

/// The experiment's `name.namespace`, as routing labels carry it.
pub fn owner_id(exp: &Experiment) -> String {
    format!("{}.{}", exp.name(), exp.namespace())
}

/// Whether `owner` (a `name.namespace`) is this experiment (compared without building its id).
fn is_owner(owner: &str, exp: &Experiment) -> bool {
    owner
        .strip_prefix(exp.name())
        .and_then(|rest| rest.strip_prefix('.'))
        == Some(exp.namespace())
}

/// The host an experiment's rules are keyed by: the service's FQDN, or its first host.
pub fn primary_host(exp: &Experiment) -> Option<String> {
    let ts = &exp.spec.target_service;
    match ts.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => Some(fqdn(name, exp.target_namespace())),
        None => ts.hosts.iter().find_map(|h| h.name.clone()),
    }
}

/// The destination of a version of the experiment.
fn destination(exp: &Experiment, version: &str, weight: u32) -> Destination {
    let ts = &exp.spec.target_service;
    match ts.kind() {
        TargetKind::Service => Destination {
            service: version.to_string(),
            workload: None,
            weight,
        },
        _ => Destination {
            service: ts.name.clone().unwrap_or_default(),
            workload: Some(version.to_string()),
            weight,
        },
    }
}

/// Whether `me` may change these rules (of `host`): not while another experiment runs on them.
fn free_for(rules: &Rules, host: &str, me: &str) -> Result<(), RoutingError> {
    if rules.role == Role::Progressing && rules.owner != me {
        return Err(RoutingError::Held {
            host: host.to_string(),
            owner: rules.owner.clone(),
        });
    }
    Ok(())
}

fn is_version(exp: &Experiment, d: &Destination, version: &str) -> bool {
    match exp.spec.target_service.kind() {
        TargetKind::Service => d.service == version,
        _ => d.workload.as_deref() == Some(version),
    }
}

/// What the router knows of a host.
#[derive(Debug, Clone, Default)]
struct Host {
    /// Bumped when the routing of the host changes.
    generation: u64,
    /// Indices into [`Router::rules`], in the order they first routed the host.
    rules: Vec<usize>,
}

/// Every rules set, by primary host.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Every rules set, in the order first created (a set is replaced in place, never
    /// removed): traffic sources and hosts refer to them by index.
    rules: Vec<Rules>,
    /// Primary host -> index into `rules`.
    by_primary: FxHashMap<String, usize>,
    /// Every host some rules set routes.
    hosts: FxHashMap<String, Host>,
    generation: u64,
}

impl Router {
    /// Bumped on every change (traffic recomputes its routes when it moves).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every rules set, by primary host.
    pub fn all(&self) -> impl Iterator<Item = &Rules> {
        let mut all: Vec<(&String, &usize)> = self.by_primary.iter().collect();
        all.sort();
        all.into_iter().map(|(_, &i)| &self.rules[i])
    }

    /// Bumped whenever the routing of `host` changes (0 before its first rules).
    pub fn host_generation(&self, host: &str) -> u64 {
        self.hosts.get(host).map_or(0, |h| h.generation)
    }

    /// The rules that route `host`.
    pub fn routing<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Rules> + 'a {
        self.hosts
            .get(host)
            .into_iter()
            .flat_map(|h| h.rules.iter().map(|&i| &self.rules[i]))
    }

    /// Records a change of the rules at `index`: bumps the generations of the hosts they route.
    fn touch(&mut self, index: usize) {
        self.generation += 1;
        for name in &self.rules[index].hosts {
            // Looked up before inserting: the host is almost always known already.
            let host = match self.hosts.get_mut(name) {
                Some(host) => host,
                None => self.hosts.entry(name.clone()).or_default(),
            };
            host.generation += 1;
            if !host.rules.contains(&index) {
                host.rules.push(index);
            }
        }
    }

    /// The rules keyed by a host.
    pub fn rules(&self, host: &str) -> Option<&Rules> {
        self.by_primary.get(host).map(|&i| &self.rules[i])
    }

    /// What routing does for the experiment now.
    pub fn observe(&self, exp: &Experiment) -> RoutingObservation {
        let rules = primary_host(exp).and_then(|host| self.rules(&host));
        let Some(rules) = rules else {
            return RoutingObservation::default();
        };
        if rules.role == Role::Progressing && !is_owner(&rules.owner, exp) {
            return RoutingObservation {
                split: None,
                held_by: Some(rules.owner.clone()),
                ..Default::default()
            };
        }
        let ts = &exp.spec.target_service;
        let weight_of = |v: &str| -> u32 {
            rules
                .destinations
                .iter()
                .filter(|d| is_version(exp, d, v))
                .map(|d| d.weight)
                .sum()
        };
        let (b, c) = (weight_of(ts.baseline()), weight_of(ts.candidate()));
        let total: u32 = rules.destinations.iter().map(|d| d.weight).sum();
        RoutingObservation {
            split: (b + c == total && total > 0).then_some(TrafficSplit {
                baseline: b,
                candidate: c,
            }),
            held_by: None,
            ..Default::default()
        }
    }

    /// The index of the rules keyed by `host`, if they exist and `me` may change them.
    fn changeable(&self, host: &str, me: &str) -> Result<usize, RoutingError> {
        let index = *self
            .by_primary
            .get(host)
            .ok_or_else(|| RoutingError::Missing(host.to_string()))?;
        free_for(&self.rules[index], host, me)?;
        Ok(index)
    }

    /// Applies a routing change for the experiment.
    pub fn apply(&mut self, exp: &Experiment, action: &RoutingAction) -> Result<(), RoutingError> {
        let host = primary_host(exp).ok_or(RoutingError::NoHost)?;
        let (host, me) = (host.as_str(), owner_id(exp));
        let me = me.as_str();
        let ts = &exp.spec.target_service;
        let (baseline, candidate) = (ts.baseline(), ts.candidate());
        let split_destinations = |split: TrafficSplit| {
            vec![
                destination(exp, baseline, split.baseline),
                destination(exp, candidate, split.candidate),
            ]
        };
        let index = match action {
            RoutingAction::Initialize => {
                let existing = self.by_primary.get(host).copied();
                if let Some(i) = existing {
                    free_for(&self.rules[i], host, me)?;
                }
                let mut hosts = Vec::new();
                let mut gateways = Vec::new();
                if let Some(name) = ts.name.as_deref().filter(|n| !n.is_empty()) {
                    hosts.push(fqdn(name, exp.target_namespace()));
                    gateways.push(MESH.to_string());
                }
                for h in &ts.hosts {
                    if let Some(name) = &h.name
                        && !hosts.contains(name)
                    {
                        hosts.push(name.clone());
                    }
                    if let Some(g) = &h.gateway
                        && !gateways.contains(g)
                    {
                        gateways.push(g.clone());
                    }
                }
                let rules = Rules {
                    namespace: exp.target_namespace().to_string(),
                    hosts,
                    gateways,
                    destinations: split_destinations(TrafficSplit::ALL_BASELINE),
                    owner: me.to_string(),
                    role: Role::Progressing,
                };
                match existing {
                    // Replaced in place: hosts refer to it by index.
                    Some(i) => {
                        self.rules[i] = rules;
                        i
                    }
                    None => {
                        self.by_primary.insert(host.to_string(), self.rules.len());
                        self.rules.push(rules);
                        self.rules.len() - 1
                    }
                }
            }
            RoutingAction::SetSplit(split) => {
                let index = self.changeable(host, me)?;
                let rules = &mut self.rules[index];
                rules.destinations = split_destinations(*split);
                rules.owner = me.to_string();
                rules.role = Role::Progressing;
                index
            }
            RoutingAction::Finalize { winner, split } => {
                let index = self.changeable(host, me)?;
                let rules = &mut self.rules[index];
                rules.destinations = match winner {
                    Winner::Baseline => vec![destination(exp, baseline, 100)],
                    Winner::Candidate => vec![destination(exp, candidate, 100)],
                    Winner::Both => split_destinations(*split),
                };
                rules.owner = me.to_string();
                rules.role = Role::Stable;
                index
            }
        };
        self.touch(index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::experiment as exp;

    /// Completes `e`'s rules on its candidate.
    fn finish_on_candidate(r: &mut Router, e: &Experiment) {
        let finalize = RoutingAction::Finalize {
            winner: Winner::Candidate,
            split: TrafficSplit::ALL_CANDIDATE,
        };
        r.apply(e, &finalize).unwrap();
    }

    #[test]
    fn life_of_the_rules() {
        let mut r = Router::default();
        let a = exp("a", "v2", "v3");
        let b = exp("b", "v3", "v4");
        assert_eq!(r.observe(&a), RoutingObservation::default());
        r.apply(&a, &RoutingAction::Initialize).unwrap();
        r.apply(
            &a,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(20)),
        )
        .unwrap();
        assert_eq!(r.observe(&a).split, Some(TrafficSplit::with_candidate(20)));
        assert_eq!(r.observe(&b).held_by.as_deref(), Some("a.ns"));
        assert!(r.apply(&b, &RoutingAction::Initialize).is_err());
        finish_on_candidate(&mut r, &a);
        // Stable rules to v3 are free for b, and read as all-baseline for it.
        assert_eq!(r.observe(&b).split, Some(TrafficSplit::ALL_BASELINE));
        r.apply(&b, &RoutingAction::Initialize).unwrap();
        assert_eq!(r.observe(&a).held_by.as_deref(), Some("b.ns"));
    }

    #[test]
    fn a_hosts_generation_moves_with_its_rules() {
        let mut r = Router::default();
        let a = exp("a", "v2", "v3");
        let host = "reviews.ns.svc.cluster.local";
        assert_eq!(r.host_generation(host), 0);
        assert_eq!(r.routing(host).count(), 0);
        r.apply(&a, &RoutingAction::Initialize).unwrap();
        let first = r.host_generation(host);
        assert!(first > 0);
        r.apply(
            &a,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(20)),
        )
        .unwrap();
        assert!(r.host_generation(host) > first, "a split change moves it");
        assert_eq!(
            r.routing(host).collect::<Vec<_>>(),
            [r.rules(host).unwrap()]
        );
        // Rules initialised again are the same rules set, replaced in place.
        finish_on_candidate(&mut r, &a);
        r.apply(&exp("b", "v3", "v4"), &RoutingAction::Initialize)
            .unwrap();
        assert_eq!(r.routing(host).count(), 1);
        assert_eq!(r.routing(host).next().unwrap().owner, "b.ns");
        assert_eq!(r.all().count(), 1);
    }
}
