//! The operator's Prometheus metrics (`/metrics`, OpenMetrics text): experiments by phase, the
//! candidate's current weight, decisions, reconcile duration, reconciles waiting for a turn,
//! reconcile errors, routing repairs, and the operator's Kubernetes API requests by verb and
//! resource.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use iter8_core::action::Event;
use iter8_core::engine::messages::ROUTING_RULES_REPAIRED;
use iter8_core::model::Experiment;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The phases reported even when no experiment is in them.
const PHASES: [&str; 4] = ["Progressing", "Pause", "Completed", "Unknown"];

/// The operator's metrics and their registry.
pub struct OperatorMetrics {
    registry: Registry,
    experiments: Family<Labels, Gauge>,
    candidate_weight: Family<Labels, Gauge>,
    decisions: Family<Labels, Counter>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<Labels, Counter>,
    queue_depth: Gauge,
    api_requests: ApiRequests,
    routing_repairs: Counter,
    phases: Mutex<BTreeMap<(String, String), String>>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl OperatorMetrics {
    /// Registers every metric under the `iter8_` prefix.
    pub fn new() -> OperatorMetrics {
        let mut registry = Registry::with_prefix("iter8");
        let experiments = Family::<Labels, Gauge>::default();
        let candidate_weight = Family::<Labels, Gauge>::default();
        let decisions = Family::<Labels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let reconcile_errors = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::default();
        let api_requests = ApiRequests::default();
        registry.register(
            "kubernetes_api_requests",
            "Requests the operator sent to the Kubernetes API server, by verb and resource",
            api_requests.0.clone(),
        );
        registry.register(
            "reconcile_queue_depth",
            "Reconciles due and waiting for a turn (--max-concurrent-reconciles)",
            queue_depth.clone(),
        );
        let routing_repairs = Counter::default();
        registry.register(
            "experiments",
            "Experiments the operator knows, by phase",
            experiments.clone(),
        );
        registry.register(
            "candidate_weight_percent",
            "The candidate's current share of traffic (status.trafficSplitPercentage.candidate)",
            candidate_weight.clone(),
        );
        registry.register(
            "decisions",
            "Status transitions written, by reason (IterationUpdate, ExperimentSucceeded, ...)",
            decisions.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile of one experiment",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and will be retried, by cause",
            reconcile_errors.clone(),
        );
        registry.register(
            "routing_repairs",
            "Routing objects of running experiments found missing and put back \
             (RoutingRulesRepaired events)",
            routing_repairs.clone(),
        );
        for phase in PHASES {
            experiments
                .get_or_create(&labels(&[("phase", phase)]))
                .set(0);
        }
        OperatorMetrics {
            registry,
            experiments,
            candidate_weight,
            decisions,
            reconcile_duration,
            reconcile_errors,
            queue_depth,
            api_requests,
            routing_repairs,
            phases: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records an experiment as it now is (after a reconcile).
    pub fn observe(&self, exp: &Experiment) {
        let key = (exp.namespace().to_string(), exp.name().to_string());
        let phase = exp
            .status
            .phase
            .as_ref()
            .map_or("Unknown".to_string(), |p| p.to_string());
        self.candidate_weight
            .get_or_create(&labels(&[("namespace", &key.0), ("experiment", &key.1)]))
            .set(i64::from(exp.status.split().candidate));
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        phases.insert(key, phase);
        self.publish(&phases);
    }

    /// The counter of API requests, for the client's layer ([`ApiRequests::layer`]).
    pub fn api_requests(&self) -> ApiRequests {
        self.api_requests.clone()
    }

    /// A reconcile started waiting for a turn (`1`) or got one (`-1`).
    pub fn queued(&self, change: i64) {
        self.queue_depth.inc_by(change);
    }

    /// Forgets an experiment that was deleted.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.candidate_weight
            .remove(&labels(&[("namespace", namespace), ("experiment", name)]));
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        phases.remove(&(namespace.to_string(), name.to_string()));
        self.publish(&phases);
    }

    fn publish(&self, phases: &BTreeMap<(String, String), String>) {
        let mut counts: BTreeMap<&str, i64> = PHASES.iter().map(|p| (*p, 0)).collect();
        for phase in phases.values() {
            *counts.entry(phase.as_str()).or_default() += 1;
        }
        for (phase, n) in counts {
            self.experiments
                .get_or_create(&labels(&[("phase", phase)]))
                .set(n);
        }
    }

    /// Counts a status transition by its reason (the message's prefix before `:`).
    pub fn decision(&self, message: &str) {
        let reason = message.split(':').next().unwrap_or("").trim();
        let reason = if reason.is_empty() { "Unknown" } else { reason };
        self.decisions
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// Counts the routing repairs among a reconcile's events.
    pub fn events(&self, events: &[Event]) {
        let repairs = events
            .iter()
            .filter(|e| e.reason == ROUTING_RULES_REPAIRED)
            .count();
        self.routing_repairs.inc_by(repairs as u64);
    }

    /// Records how long a reconcile took.
    pub fn reconciled(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts a failed reconcile by cause (`targets`, `routing`, `store`, `metrics`, ...).
    pub fn error(&self, cause: &str) {
        self.reconcile_errors
            .get_or_create(&labels(&[("cause", cause)]))
            .inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counts Kubernetes API requests by verb (`get`, `list`, `watch`, `create`, `patch`, `update`,
/// `delete`) and resource, as the API server's `apiserver_request_total` does. Cloning shares
/// the counts.
#[derive(Clone, Default)]
pub struct ApiRequests(Family<Labels, Counter>);

impl ApiRequests {
    /// Counts one request.
    pub fn count(&self, method: &http::Method, uri: &http::Uri) {
        let (verb, resource) = verb_and_resource(method, uri);
        self.0
            .get_or_create(&labels(&[("verb", verb), ("resource", resource)]))
            .inc();
    }

    /// A tower layer for kube's client stack that counts every request it sends.
    pub fn layer<B>(
        &self,
    ) -> tower::util::MapRequestLayer<impl Fn(http::Request<B>) -> http::Request<B> + Clone + use<B>>
    {
        let requests = self.clone();
        tower::util::MapRequestLayer::new(move |request: http::Request<B>| {
            requests.count(request.method(), request.uri());
            request
        })
    }
}

/// The Kubernetes verb and resource of a request to the API server. Paths are
/// `/api/v1/...` or `/apis/<group>/<version>/...`, then `namespaces/<ns>/` for namespaced
/// objects, then `<resource>[/<name>[/<subresource>]]`; a GET with a name is a `get`, one
/// without a `list`, and one with `watch=true` a `watch`.
fn verb_and_resource<'a>(method: &http::Method, uri: &'a http::Uri) -> (&'static str, &'a str) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or_default();
    let rest = match rest {
        ["namespaces", _, resource, more @ ..] => (*resource, more.first()),
        [resource, more @ ..] => (*resource, more.first()),
        [] => ("", None),
    };
    let (resource, name) = rest;
    let watching = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let verb = match *method {
        http::Method::GET if watching => "watch",
        http::Method::GET if name.is_some() || resource.is_empty() => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PATCH => "patch",
        http::Method::PUT => "update",
        http::Method::DELETE => "delete",
        _ => "other",
    };
    (
        verb,
        if resource.is_empty() {
            "other"
        } else {
            resource
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_kubernetes_verb_and_resource() {
        let cases = [
            (
                "GET",
                "/apis/iter8.tools/v1alpha1/namespaces/ns/experiments/a",
                ("get", "experiments"),
            ),
            (
                "GET",
                "/apis/iter8.tools/v1alpha1/namespaces/ns/experiments?labelSelector=x",
                ("list", "experiments"),
            ),
            (
                "GET",
                "/apis/apps/v1/deployments?watch=true&resourceVersion=5",
                ("watch", "deployments"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name%3Dx&watch=true",
                ("watch", "configmaps"),
            ),
            (
                "PATCH",
                "/apis/iter8.tools/v1alpha1/namespaces/ns/experiments/a/status",
                ("patch", "experiments"),
            ),
            ("POST", "/api/v1/namespaces/ns/events", ("create", "events")),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
                ("update", "leases"),
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/ns/deployments/d",
                ("delete", "deployments"),
            ),
            ("GET", "/api/v1/namespaces/ns", ("get", "namespaces")),
            ("GET", "/version", ("get", "other")),
        ];
        for (method, uri, want) in cases {
            let uri: http::Uri = uri.parse().unwrap();
            let method: http::Method = method.parse().unwrap();
            assert_eq!(verb_and_resource(&method, &uri), want, "{method} {uri}");
        }
        let m = OperatorMetrics::new();
        let requests = m.api_requests();
        let uri: http::Uri = "/apis/iter8.tools/v1alpha1/namespaces/ns/experiments/a/status"
            .parse()
            .unwrap();
        requests.count(&http::Method::PATCH, &uri);
        requests.count(&http::Method::PATCH, &uri);
        let text = m.render();
        assert!(
            text.contains(
                "iter8_kubernetes_api_requests_total{verb=\"patch\",resource=\"experiments\"} 2"
            ),
            "{text}"
        );
    }

    #[test]
    fn phases_are_counted_and_deleted_experiments_forgotten() {
        let m = OperatorMetrics::new();
        let mut exp = Experiment::default();
        exp.metadata.name = Some("a".into());
        exp.status.phase = Some(iter8_core::model::Phase::Progressing);
        exp.status.traffic_split_percentage =
            Some(iter8_core::model::TrafficSplit::with_candidate(20));
        m.observe(&exp);
        m.decision("IterationUpdate: Iteration 1 Started");
        let repaired = Event {
            type_: iter8_core::action::EventType::Warning,
            reason: ROUTING_RULES_REPAIRED.to_string(),
            message: "DestinationRule default/r missing: put back".to_string(),
        };
        let other = Event {
            reason: "IterationUpdate".to_string(),
            ..repaired.clone()
        };
        m.events(&[repaired, other]);
        let text = m.render();
        assert!(
            text.contains("iter8_experiments{phase=\"Progressing\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "iter8_candidate_weight_percent{namespace=\"default\",experiment=\"a\"} 20"
            ),
            "{text}"
        );
        assert!(
            text.contains("iter8_decisions_total{reason=\"IterationUpdate\"} 1"),
            "{text}"
        );
        assert!(text.contains("iter8_routing_repairs_total 1"), "{text}");
        m.forget("default", "a");
        let text = m.render();
        assert!(
            text.contains("iter8_experiments{phase=\"Progressing\"} 0"),
            "{text}"
        );
        assert!(!text.contains("experiment=\"a\""), "{text}");
    }
}
