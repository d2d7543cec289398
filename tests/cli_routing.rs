//! `iter8 routing`: the objects iter8 would apply, printed as multi-document YAML.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn iter8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("iter8 runs")
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn expected(name: &str) -> Vec<Value> {
    let path = root().join("adapters/istio/tests/data/expected").join(name);
    yaml_documents(&std::fs::read_to_string(&path).expect("expected objects"))
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

const PART1: &str = "examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml";
const PART5: &str = "examples/bookinfo/canary_productpage-v1_to_productpage-v2.yaml";

#[test]
fn part1_start_assumes_bookinfo_labels_and_says_so() {
    let out = iter8(&["routing", "-f", PART1, "-n", "bookinfo-iter8"]);
    let text = stdout(&out);
    assert!(text.starts_with("---\n"), "{text}");
    assert_eq!(text.matches("\n---\n").count() + 1, 2, "{text}");
    assert_eq!(
        yaml_documents(&text),
        expected("part1-candidate-added.yaml")
    );
    assert!(text.contains("iter8-tools/init: \"True\""), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "assuming Deployment reviews-v2 has pod-template labels app=reviews,version=v2"
        ),
        "{err}"
    );
    assert!(err.contains("reviews-v3"), "{err}");
}

#[test]
fn part1_split_and_final() {
    let split = iter8(&[
        "routing",
        "-f",
        PART1,
        "-n",
        "bookinfo-iter8",
        "--split",
        "80/20",
    ]);
    assert_eq!(
        yaml_documents(&stdout(&split)),
        expected("part1-split-80-20.yaml")
    );
    let done = iter8(&[
        "routing",
        "-f",
        PART1,
        "-n",
        "bookinfo-iter8",
        "--final",
        "candidate",
    ]);
    assert_eq!(
        yaml_documents(&stdout(&done)),
        expected("part1-final-candidate.yaml")
    );
    let early = iter8(&[
        "routing",
        "-f",
        PART1,
        "-n",
        "bookinfo-iter8",
        "--initializing",
    ]);
    assert_eq!(
        yaml_documents(&stdout(&early)),
        expected("part1-initializing.yaml")
    );
}

#[test]
fn part5_with_explicit_labels() {
    let out = iter8(&[
        "routing",
        "-f",
        PART5,
        "-n",
        "bookinfo-iter8",
        "--split",
        "80/20",
        "--baseline-labels",
        "app=productpage,version=v1",
        "--candidate-labels",
        "app=productpage,version=v2",
    ]);
    assert_eq!(
        yaml_documents(&stdout(&out)),
        expected("part5-split-80-20.yaml")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("assuming"), "{err}");
}

#[test]
fn rollback_with_custom_labels() {
    let out = iter8(&[
        "routing",
        "-f",
        PART1,
        "--final",
        "baseline",
        "--baseline-labels",
        "app=reviews,track=stable",
    ]);
    let docs = yaml_documents(&stdout(&out));
    assert_eq!(docs.len(), 2);
    // No namespace anywhere: `default`, as kubectl assumes.
    assert_eq!(
        docs[0]["metadata"]["name"],
        "reviews.default.svc.cluster.local.iter8-experiment"
    );
    assert_eq!(docs[0]["metadata"]["labels"]["iter8-tools/role"], "stable");
    let route = docs[0]["spec"]["http"][0]["route"]
        .as_array()
        .expect("route");
    assert_eq!(route.len(), 1);
    assert_eq!(route[0]["destination"]["subset"], "baseline");
    assert_eq!(route[0]["weight"], 100);
    assert_eq!(docs[1]["spec"]["subsets"][0]["labels"]["track"], "stable");
}

#[test]
fn service_kind_prints_only_a_virtual_service() {
    let out = iter8(&[
        "routing",
        "-f",
        "examples/bookinfo/service-kind/canary_productpage-v1_to_productpage-v2.yaml",
        "-n",
        "bookinfo-iter8",
        "--split",
        "60/40",
    ]);
    assert_eq!(
        yaml_documents(&stdout(&out)),
        expected("service-kind-split-60-40.yaml")
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("assuming"));
}

#[test]
fn bad_input_is_named() {
    let out = iter8(&["routing", "-f", PART1, "--split", "80/30"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must add up to 100"), "{err}");

    let out = iter8(&["routing", "-f", PART1, "--candidate-labels", "version"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--candidate-labels: `version` is not of the form key=value"),
        "{err}"
    );

    let out = iter8(&["routing", "-f", "examples/bookinfo/reviews-v3.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Experiment found"));

    let out = iter8(&[
        "routing",
        "-f",
        PART1,
        "--split",
        "80/20",
        "--final",
        "candidate",
    ]);
    assert!(!out.status.success(), "--split and --final conflict");
}

const WEB: &str = "examples/gateway-api/canary_web-v1_to_web-v2.yaml";
const WEB_ROUTE: &str = "examples/gateway-api/gateway.yaml";

/// `(name, weight)` of a rule's backendRefs in a printed HTTPRoute.
fn backend_weights(route: &Value, rule: usize) -> Vec<(String, i64)> {
    route["spec"]["rules"][rule]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

#[test]
fn an_http_route_is_printed_as_iter8_leaves_it_at_the_stage() {
    let given = yaml_documents(&std::fs::read_to_string(root().join(WEB_ROUTE)).unwrap()).remove(1);
    for (flags, weights) in [
        (
            &["--split", "70/30"][..],
            vec![("web-v1", 70), ("web-v2", 30)],
        ),
        (&[][..], vec![("web-v1", 100), ("web-v2", 0)]),
        (&["--initializing"][..], vec![("web-v1", 100)]),
        (&["--final", "candidate"][..], vec![("web-v2", 100)]),
        (&["--final", "baseline"][..], vec![("web-v1", 100)]),
    ] {
        let mut args = vec!["routing", "-f", WEB, "-n", "demo", "--route", WEB_ROUTE];
        args.extend_from_slice(flags);
        let docs = yaml_documents(&stdout(&iter8(&args)));
        assert_eq!(docs.len(), 1, "{flags:?}");
        let route = &docs[0];
        let weights: Vec<(String, i64)> =
            weights.iter().map(|(n, w)| (n.to_string(), *w)).collect();
        assert_eq!(backend_weights(route, 0), weights, "{flags:?}");
        assert_eq!(route["spec"]["rules"][1], given["spec"]["rules"][1]);
        assert_eq!(route["spec"]["parentRefs"], given["spec"]["parentRefs"]);
        assert_eq!(route["spec"]["hostnames"], given["spec"]["hostnames"]);
        assert_eq!(route["metadata"]["namespace"], "demo");
        assert_eq!(
            route["metadata"]["labels"]["iter8-tools/experiment"],
            "web-v2-rollout.demo"
        );
    }
}

/// A file in the system's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("iter8-cli-routing-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stderr_of_failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_referenced_route_must_be_given_and_an_http_route_needs_services() {
    let err = stderr_of_failure(&iter8(&["routing", "-f", WEB, "--split", "70/30"]));
    assert!(
        err.contains("spec.routingReference names HTTPRoute web: give that object's manifest with --route FILE"),
        "{err}"
    );
    let text = std::fs::read_to_string(root().join(WEB)).unwrap().replace(
        "    kind: Service\n",
        "    kind: Deployment\n    name: web\n",
    );
    let deployments = TempFile::new("deployments.yaml", &text);
    let err = stderr_of_failure(&iter8(&[
        "routing",
        "-f",
        deployments.path(),
        "--route",
        WEB_ROUTE,
    ]));
    assert!(
        err.contains("spec.targetService.kind must be Service"),
        "{err}"
    );
}

#[test]
fn a_referenced_virtual_service_keeps_its_other_routes() {
    let vs = TempFile::new(
        "vs.yaml",
        "apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews-routes
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: ratings}
  - route:
    - destination: {host: reviews}
",
    );
    let text = std::fs::read_to_string(root().join(PART1)).unwrap().replace(
        "  trafficControl:",
        "  routingReference:\n    apiVersion: networking.istio.io/v1alpha3\n    kind: VirtualService\n    name: reviews-routes\n  trafficControl:",
    );
    let exp = TempFile::new("part1-reference.yaml", &text);
    let out = iter8(&[
        "routing",
        "-f",
        exp.path(),
        "-n",
        "bookinfo-iter8",
        "--route",
        vs.path(),
        "--split",
        "80/20",
    ]);
    let docs = yaml_documents(&stdout(&out));
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let (vs, dr) = (&docs[0], &docs[1]);
    assert_eq!(vs["metadata"]["name"], "reviews-routes");
    assert_eq!(
        vs["spec"]["http"][0]["route"][0]["destination"]["host"],
        "ratings"
    );
    assert_eq!(
        vs["spec"]["http"][0]["match"][0]["headers"]["end-user"]["exact"],
        "jason"
    );
    let weights: Vec<(&str, i64)> = vs["spec"]["http"][1]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["destination"]["subset"].as_str().unwrap(),
                r["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(weights, [("baseline", 80), ("candidate", 20)]);
    assert_eq!(vs["metadata"]["labels"]["iter8-tools/external"], "True");
    assert_eq!(dr["kind"], "DestinationRule");
}
