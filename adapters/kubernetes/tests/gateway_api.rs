//! Canary experiments routed by a user's Gateway API HTTPRoute (`spec.routingReference`),
//! through the operator as `iter8 operator` wires it (Istio, or Gateway API for an HTTPRoute
//! reference): a real `kube::Client` against the fake API server (no real control plane yet),
//! metrics from a scripted source, 1 s intervals. Each checks the outcome and status as with
//! Istio, the route's target rule, and that everything else in the route is the user's.

mod support;

use iter8_fake_apiserver::FakeApiServer;
use serde_json::{Value, json};
use support::*;

const EXP: &str = "web-v2-rollout";
const SUCCEEDED: &str = "ExperimentSucceeded: All Success Criteria Were Met";

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

/// The tutorial's cluster with the worked example (web-v1, web-v2, the Gateway and the
/// HTTPRoute) and an operator over `metrics`; returns the route as the user applied it.
async fn web_cluster(metrics: FakeMetrics) -> (FakeApiServer, kube::Client, Running, Value) {
    let (server, client) = cluster().await;
    for file in ["web-v1.yaml", "web-v2.yaml", "gateway.yaml"] {
        for doc in gateway_example(file) {
            apply(&client, NS, &doc).await;
        }
    }
    let route = http_route(&server);
    let operator = Running::start(&client, metrics).await;
    (server, client, operator, route)
}

/// The HTTPRoute as stored.
fn http_route(server: &FakeApiServer) -> Value {
    server
        .object("gateway.networking.k8s.io", "httproutes", NS, "web")
        .expect("the HTTPRoute exists")
}

/// `(name, weight)` of the backendRefs of a rule of the stored route.
fn backends(server: &FakeApiServer, rule: usize) -> Vec<(String, i64)> {
    let route = http_route(server);
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

fn to(name: &str, weight: i64) -> (String, i64) {
    (name.to_string(), weight)
}

/// Fails unless the stored route is the user's `original` apart from the target rule's
/// backendRefs and iter8's labels (and the server's metadata).
fn assert_only_the_target_rule_changed(server: &FakeApiServer, original: &Value) {
    let now = http_route(server);
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

/// Roll forward: the target rule's weights step 20 points per iteration; at the end all traffic
/// goes to web-v2 and web-v1's backendRef is gone from that rule; the /status rule, its filter
/// and match, the hostnames and the parentRefs are as the user wrote them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_canary_rolls_forward() {
    let (server, client, operator, original) = web_cluster(FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(3);
    // 2s: time to read the route while iteration 1's split is served.
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    apply(&client, NS, &exp).await;
    wait_for(&server, EXP, 10, iteration_started(1)).await;
    assert_eq!(backends(&server, 0), [to("web-v1", 80), to("web-v2", 20)]);
    assert_eq!(
        label(&http_route(&server), "iter8-tools/role"),
        "progressing"
    );

    let seen = completes_with(&server, EXP, 30, ("Completed", SUCCEEDED, 0, 100)).await;
    for step in [
        "Progressing | IterationUpdate: Iteration 1 Started | 80/20",
        "Progressing | IterationUpdate: Iteration 2 Started | 60/40",
        "Progressing | IterationUpdate: Iteration 3 Started | 40/60",
    ] {
        assert!(seen.iter().any(|l| l == step), "{step}: {seen:#?}");
    }
    assert_eq!(backends(&server, 0), [to("web-v2", 100)]);
    assert_eq!(backends(&server, 1), [to("web-v1", 1)]);
    assert_only_the_target_rule_changed(&server, &original);
    let route = http_route(&server);
    assert_eq!(label(&route, "iter8-tools/role"), "stable");
    assert_eq!(
        label(&route, "iter8-tools/experiment"),
        "web-v2-rollout.bookinfo-iter8"
    );
    assert_eq!(label(&route, "iter8-tools/external"), "True");
    // Events and columns as with Istio.
    let reasons = wait_for_event(&server, EXP, "ExperimentSucceeded").await;
    assert!(
        reasons.iter().any(|(_, r)| r == "IterationUpdate"),
        "{reasons:?}"
    );
    let table = table(&server, &[EXP]);
    assert!(table.contains("web-v2-rollout"), "{table}");
    assert!(table.contains("Completed"), "{table}");
    stop_both(operator, server).await;
}

/// Roll back: a candidate that fails its criterion ends with all traffic on web-v1 and no
/// backendRef to web-v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_canary_rolls_back() {
    let (server, client, operator, original) = web_cluster(FakeMetrics::new(120.0, 5000.0)).await;
    apply(&client, NS, &web_experiment(2)).await;
    completes_with(
        &server,
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
    assert_eq!(backends(&server, 0), [to("web-v1", 100)]);
    assert_only_the_target_rule_changed(&server, &original);
    assert_eq!(label(&http_route(&server), "iter8-tools/role"), "stable");
    stop_both(operator, server).await;
}

/// Abort: a `stopOnFailure` criterion that starts failing mid-run ends the experiment at once,
/// with all traffic back on web-v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_canary_aborts_to_the_baseline() {
    let metrics = FakeMetrics::new(120.0, 100.0);
    let latency = metrics.control();
    let (server, client, operator, original) = web_cluster(metrics).await;
    let mut exp = web_experiment(10);
    exp["spec"]["analysis"]["successCriteria"][0]["stopOnFailure"] = json!(true);
    apply(&client, NS, &exp).await;
    wait_for(&server, EXP, 10, |e| {
        e["status"]["currentIteration"].as_u64() >= Some(2)
    })
    .await;
    latency.set_candidate_latency(5000.0);
    completes_with(
        &server,
        EXP,
        10,
        ("Completed", "ExperimentFailed: Aborted", 100, 0),
    )
    .await;
    assert_eq!(backends(&server, 0), [to("web-v1", 100)]);
    assert_only_the_target_rule_changed(&server, &original);
    stop_both(operator, server).await;
}

/// Deleted while running: all traffic goes back to web-v1 before the experiment goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_http_route_canary_restores_the_baseline() {
    let (server, client, operator, original) = web_cluster(FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(10);
    exp["spec"]["trafficControl"]["interval"] = json!("1h");
    apply(&client, NS, &exp).await;
    wait_for(&server, EXP, 10, iteration_started(1)).await;
    assert_eq!(backends(&server, 0), [to("web-v1", 80), to("web-v2", 20)]);
    delete_experiment(&client, EXP).await;
    wait_gone(&server, EXP, 10).await;
    assert_eq!(backends(&server, 0), [to("web-v1", 100)]);
    assert_only_the_target_rule_changed(&server, &original);
    assert_eq!(label(&http_route(&server), "iter8-tools/role"), "stable");
    stop_both(operator, server).await;
}

/// A second experiment on the same route (web-v2 → web-v3) waits with `RoutingRulesError`
/// while the first holds the route, and runs on it once the first has completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_experiment_on_the_same_route_waits() {
    let (server, client, operator, _) = web_cluster(FakeMetrics::new(120.0, 100.0)).await;
    let mut v3 = gateway_example("web-v2.yaml");
    for doc in &mut v3 {
        let text = serde_json::to_string(doc).unwrap().replace("v2", "v3");
        *doc = serde_json::from_str(&text).unwrap();
        apply(&client, NS, doc).await;
    }
    apply(&client, NS, &web_experiment(3)).await;
    wait_for(&server, EXP, 10, iteration_started(1)).await;

    const SECOND_WEB: &str = "web-v3-rollout";
    let mut second = web_experiment(2);
    second["metadata"]["name"] = json!(SECOND_WEB);
    second["spec"]["targetService"]["baseline"] = json!("web-v2");
    second["spec"]["targetService"]["candidate"] = json!("web-v3");
    apply(&client, NS, &second).await;
    wait_for(&server, SECOND_WEB, 10, |e| {
        e["status"]["message"].as_str().is_some_and(|m| {
            m.starts_with("RoutingRulesError: ")
                && m.ends_with("are held by experiment web-v2-rollout.bookinfo-iter8")
        })
    })
    .await;
    assert!(experiment(&server, SECOND_WEB).unwrap()["status"]["startTimestamp"].is_null());

    completes_with(&server, EXP, 30, ("Completed", SUCCEEDED, 0, 100)).await;
    completes_with(&server, SECOND_WEB, 30, ("Completed", SUCCEEDED, 0, 100)).await;
    assert_eq!(backends(&server, 0), [to("web-v3", 100)]);
    assert_eq!(
        label(&http_route(&server), "iter8-tools/experiment"),
        "web-v3-rollout.bookinfo-iter8"
    );
    stop_both(operator, server).await;
}

/// A reference to an HTTPRoute that does not exist pauses the experiment with
/// `RoutingRulesError` and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_http_route_pauses_the_experiment() {
    let (server, client, operator, _) = web_cluster(FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(3);
    exp["spec"]["routingReference"]["name"] = json!("nowhere");
    apply(&client, NS, &exp).await;
    wait_for(
        &server,
        EXP,
        10,
        message_is(
            "RoutingRulesError: Referenced rule does not exist: HTTPRoute bookinfo-iter8/nowhere",
        ),
    )
    .await;
    assert_eq!(
        experiment(&server, EXP).unwrap()["status"]["phase"],
        "Pause"
    );
    stop_both(operator, server).await;
}

/// Weights changed by hand while the experiment runs are put back at its next reconcile (at the
/// latest the fast-abort check of its `stopOnFailure` criterion, every 5 s), and the user's
/// edit of another rule in the same apply stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_changed_by_hand_are_put_back() {
    let (server, client, operator, _) = web_cluster(FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = web_experiment(10);
    exp["spec"]["trafficControl"]["interval"] = json!("1h");
    exp["spec"]["analysis"]["successCriteria"][0]["stopOnFailure"] = json!(true);
    apply(&client, NS, &exp).await;
    wait_for(&server, EXP, 10, iteration_started(1)).await;
    assert_eq!(backends(&server, 0), [to("web-v1", 80), to("web-v2", 20)]);

    let mut edited = gateway_example("gateway.yaml").remove(1);
    edited["spec"]["rules"][0]["backendRefs"] = json!([
        {"name": "web-v1", "port": 80, "weight": 50},
        {"name": "web-v2", "port": 80, "weight": 50}
    ]);
    edited["spec"]["rules"][1]["matches"][0]["path"]["value"] = json!("/healthz");
    apply(&client, NS, &edited).await;
    assert_eq!(backends(&server, 0), [to("web-v1", 50), to("web-v2", 50)]);

    wait_until(
        15,
        || backends(&server, 0) == [to("web-v1", 80), to("web-v2", 20)],
        || format!("not put back: {:#}", http_route(&server)),
    )
    .await;
    let route = http_route(&server);
    assert_eq!(
        route["spec"]["rules"][1]["matches"][0]["path"]["value"],
        "/healthz"
    );
    assert_eq!(
        experiment(&server, EXP).unwrap()["status"]["currentIteration"],
        1
    );
    stop_both(operator, server).await;
}
