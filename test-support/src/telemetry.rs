//! Istio telemetry-v2 per version, as Prometheus would report it for the versions a test
//! deploys: what [`FakePrometheus::per_version`](crate::FakePrometheus::per_version) answers.
//!
//! A query is recognised by the metric it reads (the stock and extended templates of
//! `iter8config-metrics`) and answered with one series per version (`destination_workload`):
//! request counts that grow with the time since the version was added, after a warm-up of
//! [`WARM_UP`] (a new version gets no traffic until routing sends it some, so the first analysis
//! of a candidate sees no samples, as in the tutorial), the version's mean and 90th-percentile
//! latency, and its error count and rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long after it is added a version starts to count requests.
pub const WARM_UP: Duration = Duration::from_secs(2);

/// How one version serves its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Mean latency (`iter8_latency`), ms.
    pub mean_ms: f64,
    /// 90th percentile latency (`iter8_90_perc_latency`), ms.
    pub p90_ms: f64,
    /// Share of requests answered with a 5xx (`iter8_error_rate`).
    pub error_rate: f64,
    /// Requests per second.
    pub rps: f64,
}

impl Behaviour {
    /// A healthy version with this mean and p90 latency, at 10 requests a second.
    pub fn ok(mean_ms: f64, p90_ms: f64) -> Behaviour {
        Behaviour {
            mean_ms,
            p90_ms,
            error_rate: 0.0,
            rps: 10.0,
        }
    }
}

/// The seed tutorial's versions as its text and dashboards describe them.
pub fn tutorial_versions() -> BTreeMap<String, Behaviour> {
    let versions = [
        ("reviews-v2", Behaviour::ok(42.0, 59.0)),
        ("reviews-v3", Behaviour::ok(37.0, 51.0)),
        // "consistently exhibits a high latency of 5 seconds"
        ("reviews-v4", Behaviour::ok(5000.0, 5100.0)),
        // "its error rate is 100%"; fast otherwise
        (
            "reviews-v5",
            Behaviour {
                error_rate: 1.0,
                ..Behaviour::ok(31.0, 45.0)
            },
        ),
        // like reviews-v3: p90 far below 200 ms
        ("reviews-v6", Behaviour::ok(38.0, 55.0)),
        ("productpage-v1", Behaviour::ok(160.0, 250.0)),
        ("productpage-v2", Behaviour::ok(130.0, 200.0)),
    ];
    versions
        .into_iter()
        .map(|(name, behaviour)| (name.to_string(), behaviour))
        .collect()
}

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Asked {
    RequestCount,
    MeanLatency,
    P90Latency,
    ErrorCount,
    ErrorRate,
}

fn classify(query: &str) -> Asked {
    if query.contains("histogram_quantile") {
        Asked::P90Latency
    } else if query.contains("request_duration") {
        Asked::MeanLatency
    } else if query.contains("response_code") && query.contains(") / ") {
        Asked::ErrorRate
    } else if query.contains("response_code") {
        Asked::ErrorCount
    } else {
        Asked::RequestCount
    }
}

/// The versions of one namespace and when each was added.
#[derive(Debug)]
pub(crate) struct Telemetry {
    namespace: String,
    versions: BTreeMap<String, (Behaviour, Instant)>,
}

impl Telemetry {
    pub(crate) fn new(namespace: &str) -> Telemetry {
        Telemetry {
            namespace: namespace.to_string(),
            versions: BTreeMap::new(),
        }
    }

    /// Adds a version (its requests count from now on, after [`WARM_UP`]), or changes a known
    /// version's behaviour, keeping its start.
    pub(crate) fn set(&mut self, version: &str, behaviour: Behaviour) {
        let added = self
            .versions
            .get(version)
            .map_or_else(Instant::now, |(_, added)| *added);
        self.versions
            .insert(version.to_string(), (behaviour, added));
    }

    /// The instant-query answer to `query`. A query that names its namespace
    /// (`destination_workload_namespace='NS'`) is answered for that namespace, so that one fake
    /// serves experiments in many namespaces; the stock queries name none.
    pub(crate) fn answer(&self, query: &str) -> Value {
        let namespace = query
            .split_once("destination_workload_namespace='")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map_or(self.namespace.as_str(), |(ns, _)| ns);
        let asked = classify(query);
        let result: Vec<Value> = self
            .versions
            .iter()
            .map(|(workload, (b, added))| {
                let serving = added.elapsed().saturating_sub(WARM_UP).as_secs_f64();
                let requests = (b.rps * serving).floor();
                let value = match asked {
                    Asked::RequestCount => requests,
                    Asked::MeanLatency => b.mean_ms,
                    Asked::P90Latency => b.p90_ms,
                    Asked::ErrorCount => (requests * b.error_rate).floor(),
                    Asked::ErrorRate => b.error_rate,
                };
                json!({
                    "metric": {
                        "destination_workload": workload,
                        "destination_workload_namespace": namespace,
                    },
                    "value": [1_700_000_000.0, value.to_string()]
                })
            })
            .collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_told_apart_by_the_metric_they_read() {
        let config =
            include_str!("../../examples/bookinfo/iter8_metrics_extended_telemetry-v2.yaml");
        let expect = [
            ("iter8_sample_size", Asked::RequestCount),
            ("iter8_latency", Asked::MeanLatency),
            ("iter8_error_count", Asked::ErrorCount),
            ("iter8_error_rate", Asked::ErrorRate),
            ("iter8_90_perc_latency", Asked::P90Latency),
        ];
        for (name, asked) in expect {
            let line = config
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name}:")))
                .unwrap_or_else(|| panic!("{name} in the extended metrics"));
            assert_eq!(classify(line), asked, "{name}");
        }
    }

    /// (workload, namespace, value) of each series of an answer.
    fn series(answer: &Value) -> Vec<(String, String, String)> {
        answer["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| {
                let label = |k: &str| s["metric"][k].as_str().unwrap_or("").to_string();
                let value = s["value"][1].as_str().unwrap_or("").to_string();
                (
                    label("destination_workload"),
                    label("destination_workload_namespace"),
                    value,
                )
            })
            .collect()
    }

    #[test]
    fn each_version_answers_with_its_behaviour_and_no_requests_during_the_warm_up() {
        let mut telemetry = Telemetry::new("bookinfo-iter8");
        let versions = tutorial_versions();
        telemetry.set("reviews-v2", versions["reviews-v2"]);
        telemetry.set("reviews-v5", versions["reviews-v5"]);
        let of = |query: &str| series(&telemetry.answer(query));
        let ns = "bookinfo-iter8".to_string();
        assert_eq!(
            of("sum(increase(istio_requests_total{reporter='source'}[30s]))"),
            [
                ("reviews-v2".to_string(), ns.clone(), "0".to_string()),
                ("reviews-v5".to_string(), ns.clone(), "0".to_string()),
            ]
        );
        assert_eq!(
            of("(sum(increase(istio_requests_total{response_code=~'5..'}[30s]))) / (sum(x))"),
            [
                ("reviews-v2".to_string(), ns.clone(), "0".to_string()),
                ("reviews-v5".to_string(), ns, "1".to_string()),
            ]
        );
    }

    #[test]
    fn a_query_naming_its_namespace_is_answered_for_that_namespace() {
        let mut telemetry = Telemetry::new("unused");
        telemetry.set("svc-0-v1", Behaviour::ok(100.0, 150.0));
        let answer = telemetry.answer(
            "sum(increase(istio_request_duration_milliseconds_sum{reporter='source', \
             destination_workload_namespace='bench-3'}[30s]))",
        );
        assert_eq!(
            series(&answer),
            [(
                "svc-0-v1".to_string(),
                "bench-3".to_string(),
                "100".to_string()
            )]
        );
    }

    #[test]
    fn changing_a_known_version_keeps_when_it_was_added() {
        let mut telemetry = Telemetry::new("ns");
        telemetry.set("v1", Behaviour::ok(1.0, 2.0));
        let added = telemetry.versions["v1"].1;
        telemetry.set("v1", Behaviour::ok(3.0, 4.0));
        assert_eq!(telemetry.versions["v1"], (Behaviour::ok(3.0, 4.0), added));
    }
}
