//! The simulated routing layer: one set of rules per service host (what Istio's
//! VirtualService and DestinationRule hold), with weighted destinations, the experiment that
//! owns them and their role.

use iter8_core::action::{RoutingAction, Winner};
use iter8_core::observation::RoutingObservation;
use iter8_core::{Experiment, TargetKind, TrafficSplit};

use crate::names::Map;

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
    /// Changes (to a number no other rules set had) whenever the destinations change other than
    /// in weight: traffic keeps what it resolved them to until then.
    pub(crate) names: u64,
    /// The numbers of `hosts`, once registered (a change then bumps their generations by
    /// number, without looking the hosts up by name).
    host_ids: Vec<HostId>,
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

/// Sets the destinations to these versions and weights, reusing the names already there (a
/// split changes every iteration; the versions do not).
/// Whether the names were kept.
fn set_destinations(
    dests: &mut Vec<Destination>,
    exp: &Experiment,
    versions: &[(&str, u32)],
) -> bool {
    let same = dests.len() == versions.len()
        && dests
            .iter()
            .zip(versions)
            .all(|(d, (v, _))| is_destination(exp, d, v));
    if same {
        for (d, (_, w)) in dests.iter_mut().zip(versions) {
            d.weight = *w;
        }
    } else {
        *dests = versions
            .iter()
            .map(|(v, w)| destination(exp, v, *w))
            .collect();
    }
    same
}

/// Whether `d` is what [`destination`] makes for the version (whatever its weight).
fn is_destination(exp: &Experiment, d: &Destination, version: &str) -> bool {
    let ts = &exp.spec.target_service;
    match ts.kind() {
        TargetKind::Service => d.service == version && d.workload.is_none(),
        _ => {
            d.service == ts.name.as_deref().unwrap_or_default()
                && d.workload.as_deref() == Some(version)
        }
    }
}

/// Sets the owner label without allocating when it does not change.
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

fn set_owner(owner: &mut String, me: &str) {
    if owner != me {
        owner.clear();
        owner.push_str(me);
    }
}

fn is_version(exp: &Experiment, d: &Destination, version: &str) -> bool {
    match exp.spec.target_service.kind() {
        TargetKind::Service => d.service == version,
        _ => d.workload.as_deref() == Some(version),
    }
}

/// A host the router has routed, numbered in the order it first was (hosts are never
/// forgotten): traffic sources look their host's generation up by number, not by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostId(usize);

/// What the router knows of a host: its generation and the rules sets that route it.
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
    /// The primary host of each of `rules` ([`Router::all`] sorts by it).
    primaries: Vec<String>,
    /// Primary host -> index into `rules`. Hashed: looked up on every reconcile.
    by_primary: Map<String, usize>,
    /// Host -> its [`HostId`].
    host_ids: Map<String, HostId>,
    /// By [`HostId`].
    hosts: Vec<Host>,
    generation: u64,
    /// The last [`Rules::names`] handed out.
    names: u64,
}

impl Router {
    /// Bumped on every change (traffic recomputes its routes when it moves).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every rules set, by primary host.
    pub fn all(&self) -> impl Iterator<Item = &Rules> {
        let mut all: Vec<(&String, &Rules)> = self.primaries.iter().zip(&self.rules).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter().map(|(_, r)| r)
    }

    /// Bumped whenever the routing of `host` changes.
    pub fn host_generation(&self, host: &str) -> u64 {
        self.host_id(host).map_or(0, |id| self.generation_of(id))
    }

    /// The number of a host that has been routed (`None` before its first rules).
    pub fn host_id(&self, host: &str) -> Option<HostId> {
        self.host_ids.get(host).copied()
    }

    /// [`Router::host_generation`] by number.
    pub fn generation_of(&self, id: HostId) -> u64 {
        self.hosts[id.0].generation
    }

    /// The rules that route `host`.
    pub fn routing<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Rules> + 'a {
        self.host_id(host)
            .into_iter()
            .flat_map(move |id| self.routing_of(id))
    }

    /// [`Router::routing`] by the host's number (no lookup by name).
    pub fn routing_of(&self, id: HostId) -> impl Iterator<Item = &Rules> + '_ {
        self.hosts[id.0].rules.iter().map(|&i| &self.rules[i])
    }

    /// Records a change of the rules at `index` (`renamed`: of their destinations' names, not
    /// only weights): bumps the generations of the hosts they route, registering those hosts
    /// on the rules' first change.
    fn touch(&mut self, index: usize, renamed: bool) {
        self.generation += 1;
        let Router {
            rules,
            host_ids,
            hosts,
            names,
            ..
        } = self;
        let rules = &mut rules[index];
        if renamed {
            *names += 1;
            rules.names = *names;
        }
        if rules.host_ids.is_empty() {
            for h in &rules.hosts {
                let id = *host_ids.entry(h.clone()).or_insert_with(|| {
                    hosts.push(Host::default());
                    HostId(hosts.len() - 1)
                });
                let routed_by = &mut hosts[id.0].rules;
                if !routed_by.contains(&index) {
                    routed_by.push(index);
                }
                rules.host_ids.push(id);
            }
        }
        for id in &rules.host_ids {
            hosts[id.0].generation += 1;
        }
    }

    /// The rules keyed by a host.
    pub fn rules(&self, host: &str) -> Option<&Rules> {
        self.by_primary.get(host).map(|&i| &self.rules[i])
    }

    /// What routing does for the experiment now.
    pub fn observe(&self, exp: &Experiment) -> RoutingObservation {
        self.observe_as(exp, primary_host(exp).as_deref(), &owner_id(exp))
    }

    /// [`Router::observe`] with the experiment's [`primary_host`] and [`owner_id`] given.
    pub fn observe_as(&self, exp: &Experiment, host: Option<&str>, me: &str) -> RoutingObservation {
        self.observe_index(exp, host.and_then(|h| self.rules_index(h)), me)
    }

    /// The index of the rules keyed by `host`, if there are any: it stays theirs (rules are
    /// replaced in place, never removed).
    pub fn rules_index(&self, host: &str) -> Option<usize> {
        self.by_primary.get(host).copied()
    }

    /// [`Router::observe_as`] with the rules found already ([`Router::rules_index`]).
    pub fn observe_index(
        &self,
        exp: &Experiment,
        index: Option<usize>,
        me: &str,
    ) -> RoutingObservation {
        let Some(rules) = index.and_then(|i| self.rules.get(i)) else {
            return RoutingObservation::default();
        };
        if rules.role == Role::Progressing && rules.owner != me {
            return RoutingObservation {
                split: None,
                held_by: Some(rules.owner.clone()),
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
        }
    }

    /// The index of the rules keyed by `host`, if they exist and `me` may change them.
    fn changeable(&self, host: &str, me: &str) -> Result<usize, RoutingError> {
        let index = self
            .rules_index(host)
            .ok_or_else(|| RoutingError::Missing(host.to_string()))?;
        free_for(&self.rules[index], host, me)?;
        Ok(index)
    }

    /// Applies a routing change for the experiment.
    pub fn apply(&mut self, exp: &Experiment, action: &RoutingAction) -> Result<(), RoutingError> {
        self.apply_as(exp, primary_host(exp).as_deref(), &owner_id(exp), action)
    }

    /// [`Router::apply`] with the experiment's [`primary_host`] and [`owner_id`] given.
    pub fn apply_as(
        &mut self,
        exp: &Experiment,
        host: Option<&str>,
        me: &str,
        action: &RoutingAction,
    ) -> Result<(), RoutingError> {
        let host = host.ok_or(RoutingError::NoHost)?;
        let ts = &exp.spec.target_service;
        let (baseline, candidate) = (ts.baseline(), ts.candidate());
        let split_destinations = |split: TrafficSplit| {
            vec![
                destination(exp, baseline, split.baseline),
                destination(exp, candidate, split.candidate),
            ]
        };
        let (index, renamed) = match action {
            RoutingAction::Initialize => {
                let existing = self.rules_index(host);
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
                    names: 0,
                    host_ids: Vec::new(),
                };
                let index = match existing {
                    // Replaced in place: hosts and traffic refer to it by index.
                    Some(i) => {
                        self.rules[i] = rules;
                        i
                    }
                    None => {
                        self.by_primary.insert(host.to_string(), self.rules.len());
                        self.primaries.push(host.to_string());
                        self.rules.push(rules);
                        self.rules.len() - 1
                    }
                };
                (index, true)
            }
            RoutingAction::SetSplit(split) => {
                let index = self.changeable(host, me)?;
                let rules = &mut self.rules[index];
                let renamed = !set_destinations(
                    &mut rules.destinations,
                    exp,
                    &[(baseline, split.baseline), (candidate, split.candidate)],
                );
                set_owner(&mut rules.owner, me);
                rules.role = Role::Progressing;
                (index, renamed)
            }
            RoutingAction::Finalize { winner, split } => {
                let index = self.changeable(host, me)?;
                let rules = &mut self.rules[index];
                rules.destinations = match winner {
                    Winner::Baseline => vec![destination(exp, baseline, 100)],
                    Winner::Candidate => vec![destination(exp, candidate, 100)],
                    Winner::Both => split_destinations(*split),
                };
                set_owner(&mut rules.owner, me);
                rules.role = Role::Stable;
                (index, true)
            }
        };
        self.touch(index, renamed);
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
    fn a_host_is_numbered_once_routed_and_its_generation_moves_with_its_rules() {
        let mut r = Router::default();
        let a = exp("a", "v2", "v3");
        let host = "reviews.ns.svc.cluster.local";
        assert_eq!(r.host_id(host), None);
        assert_eq!(r.host_generation(host), 0);
        r.apply(&a, &RoutingAction::Initialize).unwrap();
        let id = r.host_id(host).expect("numbered once routed");
        let first = r.generation_of(id);
        assert!(first > 0);
        r.apply(
            &a,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(20)),
        )
        .unwrap();
        assert!(r.generation_of(id) > first, "a split change moves it");
        assert_eq!(r.generation_of(id), r.host_generation(host));
        assert_eq!(r.host_id(host), Some(id), "the number stays");
        let by_number: Vec<&Rules> = r.routing_of(id).collect();
        assert_eq!(by_number, r.routing(host).collect::<Vec<_>>());
        assert_eq!(by_number, [r.rules(host).unwrap()]);
        // Rules initialised again are the same rules set, replaced in place.
        finish_on_candidate(&mut r, &a);
        r.apply(&exp("b", "v3", "v4"), &RoutingAction::Initialize)
            .unwrap();
        assert_eq!(r.routing_of(id).count(), 1);
        assert_eq!(r.routing_of(id).next().unwrap().owner, "b.ns");
        assert_eq!(r.all().count(), 1);
    }
}
