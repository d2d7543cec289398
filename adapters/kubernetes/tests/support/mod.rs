//! Test support: an operator running over a real `kube::Client` against the fake API server,
//! with Istio routing (iter8-istio) and metrics from a scripted metric source.

#![allow(dead_code)]

pub mod history;
pub mod version_metrics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
#[allow(unused_imports)] // not every test file uses each
pub use history::{http_get, iterations, seconds_between};
use iter8_core::driver::BuiltinAnalytics;
use iter8_core::engine::NoDashboard;
use iter8_core::measurement::{
    Measurement, MetricError, MetricReadings, MetricsQuery, VersionReading,
};
use iter8_core::ports::MetricSource;
use iter8_fake_apiserver::{FakeApiServer, plural_of};
use iter8_kubernetes::controller::{Adapters, Settings};
use iter8_kubernetes::operator::{self, OperatorError, OperatorSettings};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NS: &str = "bookinfo-iter8";
pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/bookinfo");

/// Latency (ms) the fake Prometheus reports for each version; sample sizes grow by 10 per query.
/// A [`MetricsControl`] changes the latencies while the operator runs.
pub struct FakeMetrics {
    latencies: Arc<Mutex<(f64, f64)>>,
    calls: AtomicU64,
}

impl FakeMetrics {
    pub fn new(baseline_latency: f64, candidate_latency: f64) -> FakeMetrics {
        FakeMetrics {
            latencies: Arc::new(Mutex::new((baseline_latency, candidate_latency))),
            calls: AtomicU64::new(0),
        }
    }

    /// A handle that changes what this source reports from now on.
    pub fn control(&self) -> MetricsControl {
        MetricsControl(self.latencies.clone())
    }
}

/// Changes a running [`FakeMetrics`]' latencies.
#[derive(Clone)]
pub struct MetricsControl(Arc<Mutex<(f64, f64)>>);

impl MetricsControl {
    /// The candidate's latency (ms) from the next query on.
    pub fn set_candidate_latency(&self, latency: f64) {
        self.0.lock().unwrap().1 = latency;
    }
}

#[async_trait]
impl MetricSource for FakeMetrics {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let (baseline, candidate) = *self.latencies.lock().unwrap();
        let reading = |v: f64| VersionReading {
            value: Measurement::Value(v),
            sample_size: Measurement::Value((10 * n) as f64),
        };
        Ok(query
            .metrics
            .iter()
            .map(|m| MetricReadings {
                metric: m.name.clone(),
                baseline: reading(baseline),
                candidate: reading(candidate),
            })
            .collect())
    }
}

/// The documents of a manifest.
pub fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

/// An example manifest's documents.
pub fn example(file: &str) -> Vec<Value> {
    documents(&std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap())
}

/// Part 1's experiment with a 1s interval.
pub fn part1_experiment() -> Value {
    let mut exp = example("canary_reviews-v2_to_reviews-v3.yaml").remove(0);
    exp["spec"]["trafficControl"]["interval"] = json!("1s");
    exp
}

/// A client for the fake API server.
pub fn client(server: &FakeApiServer) -> kube::Client {
    operator::install_crypto_provider();
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_namespace = "default".to_string();
    kube::Client::try_from(config).unwrap()
}

/// `kubectl apply -n <ns>` of one object, through the API (server-side apply).
pub async fn apply(client: &kube::Client, ns: &str, doc: &Value) -> Value {
    let api_version = doc["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = doc["kind"].as_str().unwrap();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural_of(kind));
    let namespaced = kind != "Namespace";
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), ns, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let mut doc = doc.clone();
    if namespaced {
        doc["metadata"]["namespace"] = json!(ns);
    }
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let out = api
        .patch(
            &name,
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
    serde_json::to_value(out).unwrap()
}

/// `kubectl apply -n <ns> -f <file>`.
pub async fn apply_file(client: &kube::Client, ns: &str, file: &str) {
    for doc in example(file) {
        apply(client, ns, &doc).await;
    }
}

/// The cluster before the tutorial: the metrics ConfigMap in `iter8`, Bookinfo with reviews-v2.
pub async fn bookinfo(client: &kube::Client) {
    apply_file(client, "", "namespace.yaml").await;
    for doc in documents(iter8_core::metrics_config::STOCK_TELEMETRY_V2) {
        apply(client, "iter8", &doc).await;
    }
    apply_file(client, NS, "bookinfo-tutorial.yaml").await;
}

/// A running operator.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), OperatorError>>,
    pub port: u16,
}

impl Running {
    /// Starts the operator over `client` with `metrics` behind the built-in analytics.
    pub async fn start(client: &kube::Client, metrics: impl MetricSource + 'static) -> Running {
        Self::start_with(client, metrics, None).await
    }

    /// Starts the operator, with leader election if given.
    pub async fn start_with(
        client: &kube::Client,
        metrics: impl MetricSource + 'static,
        leader_election: Option<operator::LeaderElection>,
    ) -> Running {
        let adapters = Adapters {
            router: Arc::new(iter8_istio::IstioRouter::new(client.clone())),
            analytics: Arc::new(BuiltinAnalytics::new(metrics)),
            dashboard: Arc::new(NoDashboard),
        };
        Self::start_over(client, adapters, leader_election).await
    }

    /// Starts the operator over the given adapters, with leader election if given.
    pub async fn start_over(
        client: &kube::Client,
        adapters: Adapters,
        leader_election: Option<operator::LeaderElection>,
    ) -> Running {
        let settings = OperatorSettings {
            controller: Settings {
                retry_after: Duration::from_millis(500),
                ..Settings::default()
            },
            leader_election,
        };
        let listener = operator::listen("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(operator::run(
            client.clone(),
            settings,
            adapters,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            stop: Some(stop),
            task,
            port,
        }
    }

    /// SIGTERM: stops and waits.
    pub async fn stop(mut self) -> Result<(), OperatorError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the operator stops within 20s")
            .unwrap()
    }

    /// GET on the operator's endpoints; it must answer.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let (code, body) = http_get(self.port, path).await;
        assert_ne!(code, 0, "nothing answers GET {path}");
        (code, body)
    }

    /// `/metrics` once it contains `want` (polled every 20 ms, at most `secs`).
    pub async fn metrics_with(&self, want: &str, secs: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, metrics) = self.get("/metrics").await;
            assert_eq!(code, 200);
            if metrics.contains(want) {
                return metrics;
            }
            assert!(tokio::time::Instant::now() < deadline, "{metrics}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The experiment as stored.
pub fn experiment(server: &FakeApiServer, name: &str) -> Option<Value> {
    server.object("iter8.tools", "experiments", NS, name)
}

/// The experiment in the core's model.
pub fn core_experiment(server: &FakeApiServer, name: &str) -> iter8_core::Experiment {
    let doc = experiment(server, name).expect("the experiment exists");
    iter8_core::manifest::parse_document(0, doc)
        .unwrap()
        .experiment
}

/// `kubectl get experiments -n bookinfo-iter8` for these names.
pub fn table(server: &FakeApiServer, names: &[&str]) -> String {
    let exps: Vec<_> = names.iter().map(|n| core_experiment(server, n)).collect();
    iter8_core::table::render(&exps)
}

/// Waits (polling every 20 ms, at most `secs`) until `check` holds for the experiment; returns
/// every distinct (phase, message, baseline, candidate) seen on the way.
pub async fn wait_for(
    server: &FakeApiServer,
    name: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let exp = experiment(server, name).unwrap_or(Value::Null);
        let s = &exp["status"];
        let line = format!(
            "{} | {} | {}/{}",
            s["phase"].as_str().unwrap_or("-"),
            s["message"].as_str().unwrap_or("-"),
            s["trafficSplitPercentage"]["baseline"],
            s["trafficSplitPercentage"]["candidate"]
        );
        if seen.last() != Some(&line) {
            seen.push(line);
        }
        if check(&exp) {
            return seen;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {name}; seen: {seen:#?}; now: {exp:#}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The message check for `wait_for`.
pub fn message_is(want: impl Into<String>) -> impl Fn(&Value) -> bool {
    let want = want.into();
    move |exp| exp["status"]["message"] == want.as_str()
}

/// The check for `wait_for` that iteration `n` has started.
pub fn iteration_started(n: u32) -> impl Fn(&Value) -> bool {
    message_is(format!("IterationUpdate: Iteration {n} Started"))
}

/// The check for `wait_for` that the experiment has completed.
pub fn completed(exp: &Value) -> bool {
    exp["status"]["phase"] == "Completed"
}

/// Polls `done` every 20 ms until it holds, at most `secs`; then fails with `what()`.
pub async fn wait_until(secs: u64, mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The weights the VirtualService for reviews serves: (subset, weight) per route.
pub fn served_weights(server: &FakeApiServer) -> Vec<(String, i64)> {
    let vs = virtual_service(server, &format!("reviews.{NS}.svc.cluster.local"))
        .expect("the VirtualService exists");
    routes(&vs)
}

/// Stops the operator (it must stop cleanly), then the API server.
pub async fn stop_both(operator: Running, server: FakeApiServer) {
    operator.stop().await.unwrap();
    server.stop().await;
}

/// Reasons of the events recorded on an experiment, in order.
pub fn event_reasons(server: &FakeApiServer, name: &str) -> Vec<(String, String)> {
    let mut events = server.objects("", "events", NS);
    events.retain(|e| e["involvedObject"]["name"] == name);
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .parse::<u64>()
            .unwrap_or(0)
    });
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits until the last event recorded on an experiment has this reason; returns all reasons.
pub async fn wait_for_event(
    server: &FakeApiServer,
    name: &str,
    reason: &str,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reasons = event_reasons(server, name);
        if reasons.last().is_some_and(|(_, r)| r == reason) {
            return reasons;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} event on {name}: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fake API server with the tutorial's cluster (metrics ConfigMap, Bookinfo with reviews-v2)
/// and a client for it.
pub async fn cluster() -> (FakeApiServer, kube::Client) {
    let server = FakeApiServer::start().await.unwrap();
    let client = client(&server);
    bookinfo(&client).await;
    (server, client)
}

/// [`cluster`] with reviews-v3 (part 1's candidate) deployed and an operator running over
/// `metrics`.
pub async fn reviews_v3_cluster(
    metrics: impl MetricSource + 'static,
) -> (FakeApiServer, kube::Client, Running) {
    let (server, client) = cluster().await;
    apply_file(&client, NS, "reviews-v3.yaml").await;
    let operator = Running::start(&client, metrics).await;
    (server, client, operator)
}

/// The name of the second experiment on reviews in the tests that run two.
pub const SECOND: &str = "reviews-v3-again";

/// Applies `exp` renamed [`SECOND`] while another experiment runs on its service, and waits
/// until it reports that it waits for the service.
pub async fn apply_second(server: &FakeApiServer, client: &kube::Client, mut exp: Value) {
    exp["metadata"]["name"] = json!(SECOND);
    apply(client, NS, &exp).await;
    wait_for(
        server,
        SECOND,
        10,
        message_is("TargetsNotFound: reviews is being involved in other experiment"),
    )
    .await;
}

/// The name iter8 gives the VirtualService and DestinationRule of a host.
pub fn rules_name(host: &str) -> String {
    format!("{host}.iter8-experiment")
}

/// The VirtualService iter8 manages for a host, as stored.
pub fn virtual_service(server: &FakeApiServer, host: &str) -> Option<Value> {
    server.object(
        "networking.istio.io",
        "virtualservices",
        NS,
        &rules_name(host),
    )
}

/// The DestinationRule iter8 manages for a host, as stored.
pub fn destination_rule(server: &FakeApiServer, host: &str) -> Option<Value> {
    server.object(
        "networking.istio.io",
        "destinationrules",
        NS,
        &rules_name(host),
    )
}

/// A VirtualService's first HTTP route: (subset, or host when there is no subset, weight).
pub fn routes(vs: &Value) -> Vec<(String, i64)> {
    vs["spec"]["http"][0]["route"]
        .as_array()
        .expect("an http route")
        .iter()
        .map(|r| {
            let d = &r["destination"];
            let to = d["subset"].as_str().or(d["host"].as_str()).unwrap_or("");
            (to.to_string(), r["weight"].as_i64().unwrap_or(0))
        })
        .collect()
}

/// A DestinationRule's subsets: (name, labels).
pub fn subsets(dr: &Value) -> Vec<(String, Value)> {
    dr["spec"]["subsets"]
        .as_array()
        .expect("subsets")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["labels"].clone(),
            )
        })
        .collect()
}

/// `iter8-tools/role` of a routing object.
pub fn role(rule: &Value) -> &str {
    rule["metadata"]["labels"]["iter8-tools/role"]
        .as_str()
        .unwrap_or("")
}

/// (phase, message, baseline %, candidate %) of a stored experiment.
pub fn outcome(server: &FakeApiServer, name: &str) -> (String, String, i64, i64) {
    let exp = experiment(server, name).expect("the experiment exists");
    let s = &exp["status"];
    (
        s["phase"].as_str().unwrap_or("").to_string(),
        s["message"].as_str().unwrap_or("").to_string(),
        s["trafficSplitPercentage"]["baseline"]
            .as_i64()
            .unwrap_or(-1),
        s["trafficSplitPercentage"]["candidate"]
            .as_i64()
            .unwrap_or(-1),
    )
}

/// An expected [`outcome`].
pub fn outcome_is(
    phase: &str,
    message: &str,
    baseline: i64,
    candidate: i64,
) -> (String, String, i64, i64) {
    (phase.to_string(), message.to_string(), baseline, candidate)
}

/// Waits (at most `secs`) until the experiment completes with this (phase, message, baseline %,
/// candidate %); returns what `wait_for` saw on the way.
pub async fn completes_with(
    server: &FakeApiServer,
    name: &str,
    secs: u64,
    (phase, message, baseline, candidate): (&str, &str, i64, i64),
) -> Vec<String> {
    let seen = wait_for(server, name, secs, completed).await;
    assert_eq!(
        outcome(server, name),
        outcome_is(phase, message, baseline, candidate),
        "{seen:#?}"
    );
    seen
}

/// Waits (at most `secs`) until the experiment is gone from the API server.
pub async fn wait_gone(server: &FakeApiServer, name: &str, secs: u64) {
    wait_until(
        secs,
        || experiment(server, name).is_none(),
        || {
            format!(
                "{name} is still there: {:#}",
                experiment(server, name).unwrap_or_default()
            )
        },
    )
    .await;
}

/// `kubectl delete -n <ns> deployment <name>`.
pub async fn delete_deployment(client: &kube::Client, name: &str) {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), NS);
    api.delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting Deployment {name}: {e}"));
}

/// `kubectl delete -n <ns> experiment <name>`.
pub async fn delete_experiment(client: &kube::Client, name: &str) {
    let api: Api<iter8_kubernetes::ExperimentResource> = Api::namespaced(client.clone(), NS);
    api.delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting Experiment {name}: {e}"));
}

/// Every version of an experiment the API server stored, oldest first: the server's change
/// history replayed by a watch from the first resourceVersion (it ends after a second).
pub async fn history(client: &kube::Client, name: &str) -> Vec<Value> {
    use futures::TryStreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let gvk = GroupVersionKind::gvk("iter8.tools", "v1alpha1", "Experiment");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "experiments");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(1);
    let replay = async {
        api.watch(&params, "1")
            .await
            .expect("watching the history")
            .try_collect::<Vec<_>>()
            .await
            .expect("reading the history")
    };
    // The server ends the watch after a second; this deadline is for a server that does not.
    let events = tokio::time::timeout(Duration::from_secs(10), replay)
        .await
        .expect("the history watch ends");
    events
        .into_iter()
        .filter_map(|e| match e {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                Some(serde_json::to_value(o).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// The distinct status messages of a history, in order.
pub fn messages(history: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for exp in history {
        if let Some(m) = exp["status"]["message"].as_str()
            && out.last().map(String::as_str) != Some(m)
        {
            out.push(m.to_string());
        }
    }
    out
}

/// How often each `IterationUpdate` event message was recorded on an experiment.
pub fn iteration_events(server: &FakeApiServer, name: &str) -> Vec<(String, i64)> {
    history::iteration_events(server, NS, name)
}
