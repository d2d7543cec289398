//! Route resolution: where a source's requests go under the routing in force — the rules that
//! route its target, their weighted destinations, the versions (Deployments) each destination
//! reaches, and how each version answers.

use rand_distr::Bernoulli;

use crate::cluster::Cluster;
use crate::profile::LatencyDistribution;
use crate::router::{MESH, Router, Rules};

use super::Traffic;

/// Where a source sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Service, from inside the mesh.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A host name, through the ingress gateway (routed only by rules bound to a Gateway that
    /// exists and serves the host).
    Host(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Service { namespace, name } => write!(f, "service {name}.{namespace}"),
            Target::Host(h) => write!(f, "host {h}"),
        }
    }
}

/// One weighted way out of a source: the series it counts in and how the version answers.
#[derive(Debug, Clone)]
pub(super) struct Way {
    /// The cumulative weight (percent) at which this way ends.
    upto: f64,
    /// Index into [`Traffic::series`].
    pub series: usize,
    /// The version's latency.
    pub latency: LatencyDistribution,
    /// Whether a request fails with a 5xx.
    pub errors: Bernoulli,
}

/// Where a source's requests go: its ways, one after the other on a scale of 0 to 100.
#[derive(Debug, Clone, Default)]
pub(super) struct Route {
    ways: Vec<Way>,
}

impl Route {
    /// The way a request drawn at `u` (in `[0, 100)`) takes; `None` when no way takes it (no
    /// rules, no endpoint, or weights summing to less than 100).
    pub fn pick(&self, u: f64) -> Option<&Way> {
        self.ways.iter().find(|w| u < w.upto)
    }
}

/// One weighted destination of a target: a Service, and the Deployment within it if the rules
/// name one (otherwise every pod the Service selects).
struct Destination<'a> {
    namespace: &'a str,
    service: &'a str,
    workload: Option<&'a str>,
    weight: f64,
}

/// The rules that route `target` (looked up by its `host`): for a Service, the rules bound to
/// the mesh; for a host, the rules bound to a Gateway that exists and serves it.
fn rules_for<'a>(
    target: &Target,
    host: &str,
    cluster: &Cluster,
    router: &'a Router,
) -> Option<&'a Rules> {
    let mut routing = router.routing(host);
    match target {
        Target::Service { .. } => routing.find(|r| r.gateways.iter().any(|g| g == MESH)),
        Target::Host(host) => routing.find(|r| {
            r.gateways.iter().any(|g| {
                g != MESH
                    && cluster
                        .gateway(&r.namespace, g)
                        .is_some_and(|gw| gw.serves(host))
            })
        }),
    }
}

/// The Deployments a destination reaches.
fn workloads(cluster: &Cluster, d: &Destination<'_>) -> Vec<String> {
    match d.workload {
        Some(w) => cluster
            .deployment(d.namespace, w)
            .map(|dep| vec![dep.name.clone()])
            .unwrap_or_default(),
        None => cluster
            .service(d.namespace, d.service)
            .map(|svc| {
                cluster
                    .selected(svc)
                    .into_iter()
                    .map(|dep| dep.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl Traffic {
    /// Resolves where source `s`'s requests go now: each destination's weight is shared evenly
    /// by the versions it reaches.
    pub(super) fn route(&mut self, s: usize, cluster: &Cluster, router: &Router) -> Route {
        // Every request still to generate arrives at or after the horizon.
        let at_ms = self.horizon.millis() as f64;
        let source = &self.sources[s];
        let rules = rules_for(&source.target, &source.host, cluster, router);
        let destinations: Vec<Destination<'_>> = match (rules, &source.target) {
            (Some(r), _) => r
                .destinations
                .iter()
                .map(|d| Destination {
                    namespace: &r.namespace,
                    service: &d.service,
                    workload: d.workload.as_deref(),
                    weight: f64::from(d.weight),
                })
                .collect(),
            // Without rules, a Service's requests go to every pod it selects.
            (None, Target::Service { namespace, name }) => vec![Destination {
                namespace,
                service: name,
                workload: None,
                weight: 100.0,
            }],
            (None, Target::Host(_)) => Vec::new(),
        };
        let reached: Vec<(String, String, Vec<String>, f64)> = destinations
            .iter()
            .filter(|d| d.weight > 0.0)
            .map(|d| {
                (
                    d.namespace.to_string(),
                    d.service.to_string(),
                    workloads(cluster, d),
                    d.weight,
                )
            })
            .collect();
        let mut route = Route::default();
        let mut upto = 0.0;
        for (namespace, service, workloads, weight) in reached {
            for workload in &workloads {
                upto += weight / workloads.len() as f64;
                let (latency, errors) = self.answer(workload, &service);
                route.ways.push(Way {
                    upto,
                    series: self.series_index(&namespace, workload, &service, at_ms),
                    latency,
                    errors,
                });
            }
        }
        route
    }
}
