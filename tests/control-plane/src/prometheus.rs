//! A fake Prometheus answering Istio telemetry-v2 instant queries per version.
//!
//! It recognises the query by the metric it reads (the stock and extended templates of
//! `iter8config-metrics`), and answers one series per version added (`destination_workload`):
//! request counts that grow with time since the version was added, after a warm-up of
//! [`WARM_UP`] (a new version gets no traffic until routing sends it some, so the first
//! analysis of a candidate sees no samples, as in the tutorial), the version's mean and
//! 90th-percentile latency, and its error count and rate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after it is added a version starts to count requests.
pub const WARM_UP: Duration = Duration::from_secs(2);

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How one version serves its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// 90th percentile latency, ms.
    pub p90_ms: f64,
    /// Share of requests answered with a 5xx.
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

/// The seed tutorial's versions as its text describes them: reviews-v4 slow (5 s),
/// reviews-v5 failing every request, the others fast.
pub fn tutorial_versions() -> BTreeMap<String, Behaviour> {
    let mut v = BTreeMap::new();
    v.insert("reviews-v2".to_string(), Behaviour::ok(42.0, 59.0));
    v.insert("reviews-v3".to_string(), Behaviour::ok(37.0, 51.0));
    v.insert("reviews-v4".to_string(), Behaviour::ok(5000.0, 5100.0));
    v.insert(
        "reviews-v5".to_string(),
        Behaviour {
            error_rate: 1.0,
            ..Behaviour::ok(31.0, 45.0)
        },
    );
    v.insert("reviews-v6".to_string(), Behaviour::ok(38.0, 55.0));
    v.insert("productpage-v1".to_string(), Behaviour::ok(160.0, 250.0));
    v.insert("productpage-v2".to_string(), Behaviour::ok(130.0, 200.0));
    v
}

#[derive(Debug)]
struct State {
    namespace: String,
    /// Each version's behaviour and when it was added.
    versions: BTreeMap<String, (Behaviour, Instant)>,
    queries: u64,
    /// The queries answered, decoded, oldest first.
    asked: Vec<String>,
    /// While set, every query is answered with this HTTP status (an outage).
    failing: Option<u16>,
}

/// The fake; its listener task ends when the value is dropped.
#[derive(Debug)]
pub struct FakePrometheus {
    url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePrometheus {
    /// Starts on 127.0.0.1 with no versions; they are added with [`FakePrometheus::set`].
    pub async fn start(namespace: &str) -> FakePrometheus {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("has an address"));
        let state = Arc::new(Mutex::new(State {
            namespace: namespace.to_string(),
            versions: BTreeMap::new(),
            queries: 0,
            asked: Vec::new(),
            failing: None,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                        if head.len() > 64 * 1024 {
                            return;
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or("").to_string();
                    let (status, body) = answer(&state, &line);
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        FakePrometheus { url, state, task }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many queries it answered.
    pub fn queries(&self) -> u64 {
        self.state.lock().expect("not poisoned").queries
    }

    /// The PromQL of every query it answered, oldest first.
    pub fn asked(&self) -> Vec<String> {
        self.state.lock().expect("not poisoned").asked.clone()
    }

    /// Adds a version (its requests count from now on, after [`WARM_UP`]), or changes a
    /// known version's behaviour from the next query on.
    pub fn set(&self, version: &str, behaviour: Behaviour) {
        let mut state = self.state.lock().expect("not poisoned");
        let added = state
            .versions
            .get(version)
            .map(|(_, added)| *added)
            .unwrap_or_else(Instant::now);
        state
            .versions
            .insert(version.to_string(), (behaviour, added));
    }

    /// Answers every query with HTTP `status` (`None`: answers again).
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().expect("not poisoned").failing = status;
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the query asks for.
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(state: &Mutex<State>, line: &str) -> (String, String) {
    let Some(rest) = line.strip_prefix("GET /api/v1/query?") else {
        return ("404 Not Found".into(), "{}".into());
    };
    let target = rest.split(' ').next().unwrap_or("");
    let query = target
        .split('&')
        .find_map(|p| p.strip_prefix("query="))
        .map(percent_decode)
        .unwrap_or_default();
    let mut state = state.lock().expect("not poisoned");
    state.queries += 1;
    state.asked.push(query.clone());
    if let Some(code) = state.failing {
        return (
            format!("{code} Injected"),
            json!({"status": "error", "errorType": "internal", "error": "injected outage"})
                .to_string(),
        );
    }
    let asked = classify(&query);
    // A query that names its namespace is answered for that namespace (the benchmark's
    // per-namespace metrics ConfigMaps); the stock queries are answered for `namespace`.
    let namespace = query
        .split_once("destination_workload_namespace='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map_or(state.namespace.clone(), |(ns, _)| ns.to_string());
    let result: Vec<Value> = state
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
    (
        "200 OK".into(),
        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_told_apart_by_the_metric_they_read() {
        let config =
            include_str!("../../../examples/bookinfo/iter8_metrics_extended_telemetry-v2.yaml");
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

    #[test]
    fn percent_decoding_reads_what_a_url_encoder_wrote() {
        assert_eq!(
            percent_decode("sum%28increase%28x%7Ba%3D%27b%27%7D%5B30s%5D%29%29+by+%28c%29"),
            "sum(increase(x{a='b'}[30s])) by (c)"
        );
    }
}
