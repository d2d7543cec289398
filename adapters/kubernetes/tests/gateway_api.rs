//! Canary experiments routed by a user's Gateway API HTTPRoute (`spec.routingReference`),
//! through the operator as `iter8 operator` wires it (Istio, or Gateway API for an HTTPRoute
//! reference): a real `kube::Client` against a real kube-apiserver with the HTTPRoute CRD
//! (v1.6.1, one namespace per test), metrics from a scripted source, 1 s intervals. Each checks
//! the outcome and status as with Istio, the route's target rule, and that everything else in
//! the route is the user's.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use iter8_control_plane::{ControlPlane, eventually};
use serde_json::{Value, json};
use support::*;

const EXP: &str = "web-v2-rollout";
const SUCCEEDED: &str = "ExperimentSucceeded: All Success Criteria Were Met";

/// The HTTPRoute CRD (Gateway API v1.6.1, standard channel), kept beside the Gateway API
/// adapter's tests.
const HTTP_ROUTE_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../gateway-api/tests/data/httproutes.crd.yaml"
);

/// The test binary's control plane with the HTTPRoute CRD installed as well (once).
fn control_plane_with_http_routes() -> &'static ControlPlane {
    static INSTALLED: OnceLock<&'static ControlPlane> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let cp = control_plane();
        cp.apply_crds(&std::fs::read_to_string(HTTP_ROUTE_CRD).expect("the HTTPRoute CRD"));
        cp
    })
}

/// The documents of a manifest of examples/gateway-api.
fn gateway_example(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../examples/gateway-api/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    documents(&std::fs::read_to_string(&path).unwrap())
}

/// The worked example's experiment with a 1 s interval and `iterations` iterations.
fn web_experiment(iterations: u32) -> Value {
    let mut exp = gateway_example("canary_web-v1_to_web-v2.yaml").remove(0);
    exp["spec"]["trafficControl"]["interval"] = json!("1s");
    exp["spec"]["trafficControl"]["maxIterations"] = json!(iterations);
    exp
}

/// The user's HTTPRoute of the worked example.
fn user_route() -> Value {
    gateway_example("gateway.yaml")
        .into_iter()
        .find(|d| d["kind"] == "HTTPRoute")
        .expect("gateway.yaml has the HTTPRoute")
}

/// Namespace `ns` with the worked example (web-v1, web-v2 and the HTTPRoute) and an operator
/// over `metrics`; returns the route as the API server stored it (with its defaults). The
/// Gateway itself is left out: only the HTTPRoute CRD is installed, and nothing on the API
/// server checks a route's parentRefs.
async fn web_cluster(ns: &str, metrics: FakeMetrics) -> (Cluster, Running, Value) {
    let cluster = Cluster::new(control_plane_with_http_routes(), ns).await;
    for doc in [
        gateway_example("web-v1.yaml"),
        gateway_example("web-v2.yaml"),
    ]
    .concat()
    {
        cluster.apply(&doc).await;
    }
    cluster.apply(&user_route()).await;
    let route = http_route(&cluster).await;
    let operator = Running::start(&cluster, metrics).await;
    (cluster, operator, route)
}

/// The HTTPRoute as stored.
async fn http_route(cluster: &Cluster) -> Value {
    cluster
        .object("gateway.networking.k8s.io/v1", "httproutes", "web")
        .await
        .expect("the HTTPRoute exists")
}

/// `(name, weight)` of the backendRefs of a rule of a route.
fn backends_of(route: &Value, rule: usize) -> Vec<(String, i64)> {
    route["spec"]["rules"][rule]["backendRefs"]
        .as_array()
        .unwrap_or_else(|| panic!("no rule {rule}: {route:#}"))
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

/// `(name, weight)` of the backendRefs of a rule of the stored route.
async fn backends(cluster: &Cluster, rule: usize) -> Vec<(String, i64)> {
    backends_of(&http_route(cluster).await, rule)
}

fn to(name: &str, weight: i64) -> (String, i64) {
    (name.to_string(), weight)
}

/// Fails unless the stored route is the user's `original` apart from the target rule's
/// backendRefs and iter8's labels (and the server's metadata).
async fn assert_only_the_target_rule_changed(cluster: &Cluster, original: &Value) {
    let now = http_route(cluster).await;
    assert_eq!(now["spec"]["parentRefs"], original["spec"]["parentRefs"]);
    assert_eq!(now["spec"]["hostnames"], original["spec"]["hostnames"]);
    let (now_rules, old_rules) = (
        now["spec"]["rules"].as_array().unwrap(),
        original["spec"]["rules"].as_array().unwrap(),
    );
    assert_eq!(now_rules.len(), old_rules.len(), "{now:#}");
    for (i, (a, b)) in now_rules.iter().zip(old_rules).enumerate() {
        let mut a = a.clone();
        let mut b = b.clone();
        if i == 0 {
            a["backendRefs"] = Value::Null;
            b["backendRefs"] = Value::Null;
        }
        assert_eq!(a, b, "rule {i} changed");
    }
}

fn label<'a>(route: &'a Value, key: &str) -> &'a str {
    route["metadata"]["labels"][key].as_str().unwrap_or("")
}

/// The `iter8-tools/experiment` label value of an experiment of the test's namespace.
fn experiment_label(cluster: &Cluster, name: &str) -> String {
    format!("{name}.{}", cluster.ns)
}

/// Roll forward: the target rule's weights step 20 points per iteration; at the end all traffic
/// goes to web-v2 and web-v1's backendRef is gone from that rule; the /status rule, its filter
/// and match, the hostnames and the parentRefs are as the user wrote them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_canary_rolls_forward() {
    let (cluster, operator, original) =
        web_cluster("route-forward", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(3);
    // 2s: time to read the route while iteration 1's split is served.
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    cluster.apply(&exp).await;
    wait_for(&cluster, EXP, 10, iteration_started(1)).await;
    assert_eq!(
        backends(&cluster, 0).await,
        [to("web-v1", 80), to("web-v2", 20)]
    );
    assert_eq!(
        label(&http_route(&cluster).await, "iter8-tools/role"),
        "progressing"
    );

    let seen = completes_with(&cluster, EXP, 30, ("Completed", SUCCEEDED, 0, 100)).await;
    for step in [
        "Progressing | IterationUpdate: Iteration 1 Started | 80/20",
        "Progressing | IterationUpdate: Iteration 2 Started | 60/40",
        "Progressing | IterationUpdate: Iteration 3 Started | 40/60",
    ] {
        assert!(seen.iter().any(|l| l == step), "{step}: {seen:#?}");
    }
    assert_eq!(backends(&cluster, 0).await, [to("web-v2", 100)]);
    assert_eq!(backends(&cluster, 1).await, [to("web-v1", 1)]);
    assert_only_the_target_rule_changed(&cluster, &original).await;
    let route = http_route(&cluster).await;
    assert_eq!(label(&route, "iter8-tools/role"), "stable");
    assert_eq!(
        label(&route, "iter8-tools/experiment"),
        experiment_label(&cluster, EXP)
    );
    assert_eq!(label(&route, "iter8-tools/external"), "True");
    // Events and columns as with Istio.
    let reasons = wait_for_event(&cluster, EXP, "ExperimentSucceeded").await;
    assert!(
        reasons.iter().any(|(_, r)| r == "IterationUpdate"),
        "{reasons:?}"
    );
    let table = table(&cluster, &[EXP]).await;
    assert!(table.contains("web-v2-rollout"), "{table}");
    assert!(table.contains("Completed"), "{table}");
    operator.stop().await.unwrap();
}

/// Roll back: a candidate that fails its criterion ends with all traffic on web-v1 and no
/// backendRef to web-v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_canary_rolls_back() {
    let (cluster, operator, original) =
        web_cluster("route-back", FakeMetrics::new(120.0, 5000.0)).await;
    cluster.apply(&web_experiment(2)).await;
    completes_with(
        &cluster,
        EXP,
        30,
        (
            "Completed",
            "ExperimentFailed: Not All Success Criteria Met",
            100,
            0,
        ),
    )
    .await;
    assert_eq!(backends(&cluster, 0).await, [to("web-v1", 100)]);
    assert_only_the_target_rule_changed(&cluster, &original).await;
    assert_eq!(
        label(&http_route(&cluster).await, "iter8-tools/role"),
        "stable"
    );
    operator.stop().await.unwrap();
}

/// Abort: a `stopOnFailure` criterion that starts failing mid-run ends the experiment at once,
/// with all traffic back on web-v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_canary_aborts_to_the_baseline() {
    let metrics = FakeMetrics::new(120.0, 100.0);
    let latency = metrics.control();
    let (cluster, operator, original) = web_cluster("route-abort", metrics).await;
    let mut exp = web_experiment(10);
    exp["spec"]["analysis"]["successCriteria"][0]["stopOnFailure"] = json!(true);
    cluster.apply(&exp).await;
    wait_for(&cluster, EXP, 10, |e| {
        e["status"]["currentIteration"].as_u64() >= Some(2)
    })
    .await;
    latency.set_candidate_latency(5000.0);
    completes_with(
        &cluster,
        EXP,
        10,
        ("Completed", "ExperimentFailed: Aborted", 100, 0),
    )
    .await;
    assert_eq!(backends(&cluster, 0).await, [to("web-v1", 100)]);
    assert_only_the_target_rule_changed(&cluster, &original).await;
    operator.stop().await.unwrap();
}

/// Deleted while running: all traffic goes back to web-v1 before the experiment goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_http_route_canary_restores_the_baseline() {
    let (cluster, operator, original) =
        web_cluster("route-delete", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(10);
    exp["spec"]["trafficControl"]["interval"] = json!("1h");
    cluster.apply(&exp).await;
    wait_for(&cluster, EXP, 10, iteration_started(1)).await;
    assert_eq!(
        backends(&cluster, 0).await,
        [to("web-v1", 80), to("web-v2", 20)]
    );
    delete_experiment(&cluster, EXP).await;
    wait_gone(&cluster, EXP, 10).await;
    assert_eq!(backends(&cluster, 0).await, [to("web-v1", 100)]);
    assert_only_the_target_rule_changed(&cluster, &original).await;
    assert_eq!(
        label(&http_route(&cluster).await, "iter8-tools/role"),
        "stable"
    );
    operator.stop().await.unwrap();
}

/// A second experiment on the same route (web-v2 → web-v3) waits while the first runs (paused
/// with v0.2.1's `TargetsNotFound` text: its baseline web-v2 is the first's candidate, and the
/// targets are checked before the routing rules), and runs on the route once the first has
/// completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_experiment_on_the_same_route_waits() {
    let (cluster, operator, _) = web_cluster("route-second", FakeMetrics::new(120.0, 100.0)).await;
    for doc in gateway_example("web-v2.yaml") {
        let text = serde_json::to_string(&doc).unwrap().replace("v2", "v3");
        cluster.apply(&serde_json::from_str(&text).unwrap()).await;
    }
    cluster.apply(&web_experiment(3)).await;
    wait_for(&cluster, EXP, 10, iteration_started(1)).await;

    const SECOND_WEB: &str = "web-v3-rollout";
    let mut second = web_experiment(2);
    second["metadata"]["name"] = json!(SECOND_WEB);
    second["spec"]["targetService"]["baseline"] = json!("web-v2");
    second["spec"]["targetService"]["candidate"] = json!("web-v3");
    cluster.apply(&second).await;
    wait_for(
        &cluster,
        SECOND_WEB,
        10,
        message_is(format!(
            "TargetsNotFound: Baseline web-v2.{} is being involved in other experiment",
            cluster.ns
        )),
    )
    .await;
    assert!(experiment(&cluster, SECOND_WEB).await.unwrap()["status"]["startTimestamp"].is_null());

    completes_with(&cluster, EXP, 30, ("Completed", SUCCEEDED, 0, 100)).await;
    completes_with(&cluster, SECOND_WEB, 30, ("Completed", SUCCEEDED, 0, 100)).await;
    assert_eq!(backends(&cluster, 0).await, [to("web-v3", 100)]);
    assert_eq!(
        label(&http_route(&cluster).await, "iter8-tools/experiment"),
        experiment_label(&cluster, SECOND_WEB)
    );
    operator.stop().await.unwrap();
}

/// A reference to an HTTPRoute that does not exist pauses the experiment with
/// `RoutingRulesError` and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_http_route_pauses_the_experiment() {
    let (cluster, operator, _) = web_cluster("route-missing", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(3);
    exp["spec"]["routingReference"]["name"] = json!("nowhere");
    cluster.apply(&exp).await;
    wait_for(
        &cluster,
        EXP,
        10,
        message_is(format!(
            "RoutingRulesError: Referenced rule does not exist: HTTPRoute {}/nowhere",
            cluster.ns
        )),
    )
    .await;
    assert_eq!(
        experiment(&cluster, EXP).await.unwrap()["status"]["phase"],
        "Pause"
    );
    operator.stop().await.unwrap();
}

/// Weights changed by hand while the experiment runs are put back at its next reconcile (at the
/// latest the fast-abort check of its `stopOnFailure` criterion, every 5 s), and the user's
/// edit of another rule in the same apply stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_changed_by_hand_are_put_back() {
    let (cluster, operator, _) = web_cluster("route-drift", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(10);
    exp["spec"]["trafficControl"]["interval"] = json!("1h");
    exp["spec"]["analysis"]["successCriteria"][0]["stopOnFailure"] = json!(true);
    cluster.apply(&exp).await;
    wait_for(&cluster, EXP, 10, iteration_started(1)).await;
    assert_eq!(
        backends(&cluster, 0).await,
        [to("web-v1", 80), to("web-v2", 20)]
    );

    let mut edited = user_route();
    edited["spec"]["rules"][0]["backendRefs"] = json!([
        {"name": "web-v1", "port": 80, "weight": 50},
        {"name": "web-v2", "port": 80, "weight": 50}
    ]);
    edited["spec"]["rules"][1]["matches"][0]["path"]["value"] = json!("/healthz");
    // The route as the apply stored it: read from the apply's answer, before the operator can
    // put the weights back.
    let applied = cluster.apply(&edited).await;
    assert_eq!(
        backends_of(&applied, 0),
        [to("web-v1", 50), to("web-v2", 50)]
    );

    eventually(Duration::from_secs(15), "the weights put back", || async {
        (backends(&cluster, 0).await == [to("web-v1", 80), to("web-v2", 20)]).then_some(())
    })
    .await;
    let route = http_route(&cluster).await;
    assert_eq!(
        route["spec"]["rules"][1]["matches"][0]["path"]["value"],
        "/healthz"
    );
    assert_eq!(
        experiment(&cluster, EXP).await.unwrap()["status"]["currentIteration"],
        1
    );
    operator.stop().await.unwrap();
}

/// As v0.2.1's initializing rules: while the candidate's Service is missing, the route's rule
/// sends everything to the baseline (no backendRef to a Service that is not there, role
/// `initializing`); the candidate's backendRef comes with the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_serves_the_baseline_alone_until_the_candidate_exists() {
    let cluster = Cluster::new(control_plane_with_http_routes(), "route-init").await;
    for doc in gateway_example("web-v1.yaml") {
        cluster.apply(&doc).await;
    }
    cluster.apply(&user_route()).await;
    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(2);
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    cluster.apply(&exp).await;
    wait_for(
        &cluster,
        EXP,
        10,
        message_is("TargetsNotFound: Missing Candidate"),
    )
    .await;
    let route = eventually(Duration::from_secs(10), "the initializing route", || {
        let cluster = &cluster;
        async move {
            let route = http_route(cluster).await;
            (label(&route, "iter8-tools/role") == "initializing").then_some(route)
        }
    })
    .await;
    assert_eq!(backends_of(&route, 0), [to("web-v1", 100)]);

    for doc in gateway_example("web-v2.yaml") {
        cluster.apply(&doc).await;
    }
    wait_for(&cluster, EXP, 10, iteration_started(1)).await;
    assert_eq!(
        backends(&cluster, 0).await,
        [to("web-v1", 80), to("web-v2", 20)]
    );
    operator.stop().await.unwrap();
}
