//! Test support: an operator running in process over a `kube::Client` against a real
//! kube-apiserver (`iter8-control-plane`, one per test binary), with Istio routing
//! (iter8-istio) and metrics from a scripted metric source. Each test works in a namespace of
//! its own, and its operator watches only that namespace, so tests run in parallel on one API
//! server.

#![allow(dead_code)]

pub mod version_metrics;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use iter8_control_plane::{ControlPlane, eventually, object, objects};
#[allow(unused_imports)] // not every test file uses each
pub use iter8_control_plane::{
    History, assert_iterations_once, http_get, iterations, seconds_between,
};
use iter8_core::driver::BuiltinAnalytics;
use iter8_core::engine::NoDashboard;
use iter8_core::measurement::{
    Measurement, MetricError, MetricReadings, MetricsQuery, VersionReading,
};
use iter8_core::ports::MetricSource;
use iter8_kubernetes::controller::{Adapters, Settings};
use iter8_kubernetes::operator::{self, OperatorError, OperatorSettings};
use iter8_rand::ChaCha;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

/// The Istio networking CRDs (1.x, as Istio ships them), kept beside the Istio adapter's tests.
const ISTIO_CRDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../istio/tests/data/networking-crds.yaml"
);

/// The control plane of this test binary, with the Istio networking CRDs and iter8's install
/// bundle applied (once).
pub fn control_plane() -> &'static ControlPlane {
    static INSTALLED: OnceLock<&'static ControlPlane> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let cp = ControlPlane::shared();
        cp.apply_crds(&std::fs::read_to_string(ISTIO_CRDS).expect("the Istio CRDs"));
        let bundle = iter8_kubernetes::install::bundle_yaml(&Default::default())
            .expect("the install bundle");
        cp.apply_crds(&bundle);
        cp
    })
}

/// A second control plane whose Experiment CRD has no schema (every field kept as sent), for
/// the experiments a validating API server would refuse: the operator must still name the
/// wrong field when such a cluster lets one through.
pub fn control_plane_without_crd_validation() -> &'static ControlPlane {
    static INSTALLED: OnceLock<&'static ControlPlane> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let cp = ControlPlane::shared_named("without-crd-validation");
        cp.apply_crds(&std::fs::read_to_string(ISTIO_CRDS).expect("the Istio CRDs"));
        let mut crd = iter8_kubernetes::install::objects(&Default::default())
            .expect("the install bundle")
            .into_iter()
            .find(|o| o["kind"] == "CustomResourceDefinition")
            .expect("the bundle has the Experiment CRD");
        for version in crd["spec"]["versions"].as_array_mut().expect("versions") {
            version["schema"]["openAPIV3Schema"] =
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        }
        // JSON is YAML: kubectl reads it as one document.
        cp.apply_crds(&crd.to_string());
        cp
    })
}

/// One test's part of the control plane: a namespace of its own and an admin client.
pub struct Cluster {
    /// The control plane.
    pub cp: &'static ControlPlane,
    /// A client as the cluster admin.
    pub client: kube::Client,
    /// The test's namespace (the tutorial's `bookinfo-iter8`, renamed per test).
    pub ns: String,
}

impl Cluster {
    /// Namespace `ns` (new; the name must be unique in the test binary) on `cp`, with the stock
    /// metrics ConfigMap in it: the test's operator reads its metrics from its own namespace,
    /// so that a test changing them (tutorial part 4) changes them for itself only.
    pub async fn new(cp: &'static ControlPlane, ns: &str) -> Cluster {
        iter8_test_support::install_crypto_provider();
        let cluster = Cluster {
            cp,
            client: cp.client().await,
            ns: ns.to_string(),
        };
        apply_in(
            &cluster.client,
            "",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
        for doc in documents(iter8_core::metrics_config::STOCK_TELEMETRY_V2) {
            cluster.apply(&doc).await;
        }
        cluster
    }

    /// The cluster-local host of a Service in the test's namespace.
    pub fn host(&self, service: &str) -> String {
        format!("{service}.{}.svc.cluster.local", self.ns)
    }

    /// `kubectl apply -n <ns>` of one object, through the API (server-side apply).
    pub async fn apply(&self, doc: &Value) -> Value {
        apply_in(&self.client, &self.ns, doc).await
    }

    /// `kubectl apply -n <ns> -f <example file>`.
    pub async fn apply_file(&self, file: &str) {
        for doc in example(file) {
            self.apply(&doc).await;
        }
    }

    /// An object of the test's namespace as stored; `None` if it does not exist.
    pub async fn object(&self, api_version: &str, plural: &str, name: &str) -> Option<Value> {
        object(&self.client, api_version, plural, &self.ns, name).await
    }

    /// Records every version of experiment `name` from now on (start it before applying).
    pub async fn record(&self, name: &str) -> History {
        History::start(
            &self.client,
            "iter8.tools/v1alpha1",
            "experiments",
            &self.ns,
            name,
        )
        .await
    }
}

/// `kubectl apply -n <ns>` of one object (`ns` ignored for cluster-scoped kinds), through the
/// API (server-side apply, field manager `kubectl`).
pub async fn apply_in(client: &kube::Client, ns: &str, doc: &Value) -> Value {
    let api_version = doc["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = doc["kind"].as_str().unwrap();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovering {kind}: {e}"));
    let namespaced = capabilities.scope == kube::discovery::Scope::Namespaced;
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

/// A test's cluster before the tutorial: its namespace, the metrics ConfigMap, Bookinfo with
/// reviews-v2.
pub async fn cluster(ns: &str) -> Cluster {
    cluster_on(control_plane(), ns).await
}

/// [`cluster`] on another control plane.
pub async fn cluster_on(cp: &'static ControlPlane, ns: &str) -> Cluster {
    let cluster = Cluster::new(cp, ns).await;
    cluster.apply_file("bookinfo-tutorial.yaml").await;
    cluster
}

/// A running operator.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), OperatorError>>,
    pub port: u16,
}

impl Running {
    /// Starts the operator over the test's namespace with `metrics` behind the built-in
    /// analytics.
    pub async fn start(cluster: &Cluster, metrics: impl MetricSource + 'static) -> Running {
        Self::start_with(cluster, metrics, None).await
    }

    /// Starts the operator, with leader election if given.
    pub async fn start_with(
        cluster: &Cluster,
        metrics: impl MetricSource + 'static,
        leader_election: Option<operator::LeaderElection>,
    ) -> Running {
        let client = &cluster.client;
        let adapters = Adapters {
            // As `iter8 operator` wires it: Istio, or Gateway API for an HTTPRoute reference.
            router: Arc::new(iter8_kubernetes::ByReference {
                default: Arc::new(iter8_istio::IstioRouter::watching(
                    client.clone(),
                    Some(&cluster.ns),
                    iter8_kubernetes::backoff::watch_backoff,
                )),
                http_route: Arc::new(iter8_gateway_api::GatewayRouter::new(client.clone())),
            }),
            analytics: Arc::new(BuiltinAnalytics::new(metrics, ChaCha)),
            dashboard: Arc::new(NoDashboard),
            events: None,
        };
        Self::start_over(cluster, adapters, leader_election).await
    }

    /// Starts the operator over the test's namespace with the given adapters, with leader
    /// election if given.
    pub async fn start_over(
        cluster: &Cluster,
        adapters: Adapters,
        leader_election: Option<operator::LeaderElection>,
    ) -> Running {
        let client = &cluster.client;
        let settings = OperatorSettings {
            controller: Settings {
                namespace: Some(cluster.ns.clone()),
                metrics_namespace: cluster.ns.clone(),
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
            Arc::new(iter8_kubernetes::OperatorMetrics::new()),
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

    /// Whether the operator has stopped on its own (an error, a lost Lease).
    pub fn has_stopped(&self) -> bool {
        self.task.is_finished()
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
        let (port, target) = (self.port, path.to_string());
        let (code, body) = tokio::task::spawn_blocking(move || http_get(port, &target))
            .await
            .expect("the GET does not panic");
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
pub async fn experiment(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster
        .object("iter8.tools/v1alpha1", "experiments", name)
        .await
}

/// The experiment in the core's model.
pub async fn core_experiment(cluster: &Cluster, name: &str) -> iter8_core::Experiment {
    let doc = experiment(cluster, name)
        .await
        .expect("the experiment exists");
    iter8_core::manifest::parse_document(0, doc)
        .unwrap()
        .experiment
}

/// `kubectl get experiments -n <ns>` for these names.
pub async fn table(cluster: &Cluster, names: &[&str]) -> String {
    let mut exps = Vec::new();
    for name in names {
        exps.push(core_experiment(cluster, name).await);
    }
    iter8_core::table::render(&exps)
}

/// Waits (polling every 20 ms, at most `secs`) until `check` holds for the experiment; returns
/// every distinct (phase, message, baseline, candidate) seen on the way.
pub async fn wait_for(
    cluster: &Cluster,
    name: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let exp = experiment(cluster, name).await.unwrap_or(Value::Null);
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

/// The weights the VirtualService for reviews serves: (subset, weight) per route.
pub async fn served_weights(cluster: &Cluster) -> Vec<(String, i64)> {
    let vs = virtual_service(cluster, &cluster.host("reviews"))
        .await
        .expect("the VirtualService exists");
    routes(&vs)
}

/// The Events recorded on an experiment, oldest first (by resourceVersion: an Event counted
/// again moves to where it was last recorded).
async fn events_on(cluster: &Cluster, name: &str) -> Vec<Value> {
    let mut events = objects(&cluster.client, "v1", "events", &cluster.ns).await;
    events.retain(|e| e["involvedObject"]["name"] == name);
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .parse::<u64>()
            .unwrap_or(0)
    });
    events
}

/// (type, reason) of the events recorded on an experiment, in order.
pub async fn event_reasons(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    events_on(cluster, name)
        .await
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
pub async fn wait_for_event(cluster: &Cluster, name: &str, reason: &str) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reasons = event_reasons(cluster, name).await;
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

/// How often each `IterationUpdate` event message was recorded on an experiment (summing the
/// `count` of aggregated Events and Events of different operator instances).
pub async fn iteration_events(cluster: &Cluster, name: &str) -> Vec<(String, i64)> {
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for e in events_on(cluster, name).await {
        if e["reason"] == "IterationUpdate" {
            *counts
                .entry(e["message"].as_str().unwrap_or("").to_string())
                .or_default() += e["count"].as_i64().unwrap_or(1);
        }
    }
    counts.into_iter().collect()
}

/// [`cluster`] with reviews-v3 (part 1's candidate) deployed and an operator running over
/// `metrics`.
pub async fn reviews_v3_cluster(
    ns: &str,
    metrics: impl MetricSource + 'static,
) -> (Cluster, Running) {
    let cluster = cluster(ns).await;
    cluster.apply_file("reviews-v3.yaml").await;
    let operator = Running::start(&cluster, metrics).await;
    (cluster, operator)
}

/// The name of the second experiment on reviews in the tests that run two.
pub const SECOND: &str = "reviews-v3-again";

/// Applies `exp` renamed [`SECOND`] while another experiment runs on its service, and waits
/// until it reports that it waits for the service.
pub async fn apply_second(cluster: &Cluster, mut exp: Value) {
    exp["metadata"]["name"] = json!(SECOND);
    cluster.apply(&exp).await;
    wait_for(
        cluster,
        SECOND,
        10,
        message_is(&format!(
            "TargetsNotFound: Service reviews.{} is being involved in other experiment",
            cluster.ns
        )),
    )
    .await;
}

/// The name iter8 gives the VirtualService and DestinationRule of a host.
pub fn rules_name(host: &str) -> String {
    format!("{host}.iter8-experiment")
}

/// The VirtualService iter8 manages for a host, as stored.
pub async fn virtual_service(cluster: &Cluster, host: &str) -> Option<Value> {
    cluster
        .object(
            "networking.istio.io/v1alpha3",
            "virtualservices",
            &rules_name(host),
        )
        .await
}

/// The DestinationRule iter8 manages for a host, as stored.
pub async fn destination_rule(cluster: &Cluster, host: &str) -> Option<Value> {
    cluster
        .object(
            "networking.istio.io/v1alpha3",
            "destinationrules",
            &rules_name(host),
        )
        .await
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
pub async fn outcome(cluster: &Cluster, name: &str) -> (String, String, i64, i64) {
    let exp = experiment(cluster, name)
        .await
        .expect("the experiment exists");
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
    cluster: &Cluster,
    name: &str,
    secs: u64,
    (phase, message, baseline, candidate): (&str, &str, i64, i64),
) -> Vec<String> {
    let seen = wait_for(cluster, name, secs, completed).await;
    assert_eq!(
        outcome(cluster, name).await,
        outcome_is(phase, message, baseline, candidate),
        "{seen:#?}"
    );
    seen
}

/// Waits (at most `secs`) until the experiment is gone from the API server.
pub async fn wait_gone(cluster: &Cluster, name: &str, secs: u64) {
    eventually(
        Duration::from_secs(secs),
        &format!("{name} to be gone"),
        || async move { experiment(cluster, name).await.is_none().then_some(()) },
    )
    .await;
}

/// `kubectl delete -n <ns> deployment <name>`.
pub async fn delete_deployment(cluster: &Cluster, name: &str) {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(cluster.client.clone(), &cluster.ns);
    api.delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting Deployment {name}: {e}"));
}

/// `kubectl delete -n <ns> experiment <name>`.
pub async fn delete_experiment(cluster: &Cluster, name: &str) {
    let api: Api<iter8_kubernetes::ExperimentResource> =
        Api::namespaced(cluster.client.clone(), &cluster.ns);
    api.delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting Experiment {name}: {e}"));
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
