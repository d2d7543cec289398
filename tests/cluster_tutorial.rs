//! The seed tutorial's five parts on a real kube-apiserver: the seed's manifests applied with
//! the pinned `kubectl` (only the interval shortened from 30 s to 3 s), the `iter8 operator`
//! binary running as the install bundle's ServiceAccount (so the real RBAC authorizer proves
//! the bundle grants enough), metrics from a fake Prometheus per version, and after each step
//! the seed's own `kubectl get experiment(s)` command printing the seed's table, printed by the
//! API server from the CRD's columns.

mod cluster;

use std::time::Duration;

use cluster::*;
use iter8_test_support::{FakePrometheus, tutorial_versions};

const NS: &str = "bookinfo-iter8";
const SEED: &str = include_str!("data/iter8-canary-tutorial.md");
const INTERVAL: &str = "3s";

/// The seed's `kubectl get experiment(s)` commands (arguments after `kubectl`) with the table
/// each printed.
fn seed_tables() -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    let mut lines = SEED.lines();
    while let Some(line) = lines.next() {
        let Some(command) = line.trim_start().strip_prefix("$ kubectl get experiment") else {
            continue;
        };
        let args: Vec<String> = format!("get experiment{command}")
            .split_whitespace()
            .map(String::from)
            .collect();
        let mut table = String::new();
        for row in lines.by_ref() {
            if row.trim().is_empty() || row.starts_with("```") {
                break;
            }
            table.push_str(row);
            table.push('\n');
        }
        out.push((args, cells(&table)));
    }
    out
}

#[test]
fn the_five_parts_print_the_seeds_tables_on_a_real_api_server() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cp = cluster();
    let tables = seed_tables();
    assert_eq!(tables.len(), 14, "the seed has 14 experiment tables");

    let prometheus = runtime.block_on(FakePrometheus::per_version(NS));
    let versions = tutorial_versions();
    // A version serves (and Prometheus counts its requests) once its Deployment is applied.
    let deploy = |file: &str| {
        let manifest = example(file, INTERVAL);
        apply_in(cp, NS, &manifest);
        for (name, behaviour) in &versions {
            if manifest.contains(&format!("name: {name}\n")) {
                prometheus.set(name, *behaviour);
            }
        }
    };
    let _guard = runtime.enter();

    // Part 1, step 1: the Bookinfo application (objects only: no pods run here).
    cp.apply(&std::fs::read_to_string(format!("{EXAMPLES}/namespace.yaml")).unwrap());
    deploy("bookinfo-tutorial.yaml");
    apply_in(cp, NS, &example("bookinfo-gateway.yaml", INTERVAL));

    // The operator as the bundle's ServiceAccount.
    let kubeconfig = cp.service_account_kubeconfig("iter8", "iter8-controller");
    let mut operator = Operator::spawn(&kubeconfig, NS, &prometheus.url(), &[]);

    let mut table = 0;
    let mut expect = |operator: &mut Operator, timeout_secs: u64| {
        let (args, expected) = &tables[table];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wait_for_table(
            cp,
            &args,
            expected,
            Duration::from_secs(timeout_secs),
            operator,
        );
        table += 1;
    };

    // Part 1: reviews-v2 -> reviews-v3, succeeds.
    apply_in(
        cp,
        NS,
        &example("canary_reviews-v2_to_reviews-v3.yaml", INTERVAL),
    );
    expect(&mut operator, 30);
    deploy("reviews-v3.yaml");
    expect(&mut operator, 30);
    expect(&mut operator, 60);

    // Part 2: reviews-v3 -> reviews-v4 (5 s latency), rolled back.
    apply_in(
        cp,
        NS,
        &example("canary_reviews-v3_to_reviews-v4.yaml", INTERVAL),
    );
    expect(&mut operator, 30);
    deploy("reviews-v4.yaml");
    expect(&mut operator, 30);
    expect(&mut operator, 60);
    expect(&mut operator, 10);

    // Part 3: reviews-v3 -> reviews-v5 (every request fails), aborted.
    apply_in(
        cp,
        NS,
        &example("canary_reviews-v3_to_reviews-v5.yaml", INTERVAL),
    );
    deploy("reviews-v5.yaml");
    expect(&mut operator, 30);
    expect(&mut operator, 60);

    // Part 4: a custom metric (p90 latency) from the extended metrics ConfigMap.
    expect(&mut operator, 10);
    apply_in(
        cp,
        "iter8",
        &example("iter8_metrics_extended_telemetry-v2.yaml", INTERVAL),
    );
    apply_in(
        cp,
        NS,
        &example("canary_reviews-v3_to_reviews-v6.yaml", INTERVAL),
    );
    expect(&mut operator, 30);
    deploy("reviews-v6.yaml");
    expect(&mut operator, 30);
    expect(&mut operator, 60);

    // Part 5: productpage behind the Istio gateway, user-facing.
    apply_in(cp, NS, &example("productpage-gateway.yaml", INTERVAL));
    apply_in(
        cp,
        NS,
        &example("canary_productpage-v1_to_productpage-v2.yaml", INTERVAL),
    );
    deploy("productpage-v2.yaml");
    expect(&mut operator, 30);
    assert_eq!(table, tables.len());

    // The routing the operator applied is under the Istio CRDs' schemas, owned by its field
    // manager, and routes as the last table says.
    let vs = cp.kubectl_ok(
        &[
            "get",
            "virtualservice",
            "-n",
            NS,
            "-l",
            "iter8-tools/host=reviews.bookinfo-iter8.svc.cluster.local",
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    );
    let vs: serde_json::Value = serde_json::from_str(&vs).unwrap();
    let item = &vs["items"][0];
    let routes = item["spec"]["http"][0]["route"].as_array().expect("routes");
    let weights: Vec<(String, i64)> = routes
        .iter()
        .map(|r| {
            (
                r["destination"]["subset"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                r["weight"].as_i64().unwrap_or(100),
            )
        })
        .filter(|(_, w)| *w > 0)
        .collect();
    assert_eq!(
        weights,
        [("candidate".to_string(), 100)],
        "all of reviews' traffic goes to the candidate (reviews-v6) after part 4"
    );
    let dr = cp.kubectl_ok(
        &[
            "get",
            "destinationrule",
            "-n",
            NS,
            "-l",
            "iter8-tools/host=reviews.bookinfo-iter8.svc.cluster.local",
            "-o",
            "json",
        ],
        None,
    );
    let dr: serde_json::Value = serde_json::from_str(&dr).unwrap();
    let candidate = dr["items"][0]["spec"]["subsets"]
        .as_array()
        .expect("subsets")
        .iter()
        .find(|s| s["name"] == "candidate")
        .cloned()
        .expect("a candidate subset");
    assert_eq!(candidate["labels"]["version"], "v6", "{candidate}");
    let managers: Vec<&str> = item["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.iter().any(|m| m.starts_with("iter8")),
        "the operator's field manager owns the rules: {managers:?}"
    );
    assert!(!prometheus.queries().is_empty());
}
