//! `iter8 operator`, the binary, end to end: against the fake API server (through a kubeconfig
//! file) and a fake Prometheus on 127.0.0.1 answering the stock telemetry-v2 queries. Tutorial
//! part 1 with a 1 s interval and 3 iterations runs to `ExperimentSucceeded` (after the
//! operator's watches were ended and had to relist on 410 Expired); the endpoints answer;
//! SIGTERM stops the process cleanly. Two binaries with `--leader-elect`: the leader killed
//! with SIGKILL (its Lease not released) is replaced once the Lease expires, and the
//! experiment goes on with no iteration lost or repeated.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use iter8_fake_apiserver::FakeApiServer;
use iter8_test_support::FakePrometheus;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// Shared with the adapter's operator tests; it needs nothing this crate's dev-dependencies lack.
#[path = "../adapters/kubernetes/tests/support/history.rs"]
mod history;
use history::{http_get as get, iterations, seconds_between};

const NS: &str = "bookinfo-iter8";
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bookinfo");
const EXPERIMENT: &str = "reviews-v3-rollout";

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "iter8-operator-binary-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The operator process; killed by its PID if the test ends before it exits.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    /// Starts `iter8 operator` against the fake API server and the fake Prometheus, with
    /// `extra` flags, its endpoints on `port` and its log in `log`.
    fn spawn(config: &Path, prometheus: &str, port: u16, log: PathBuf, extra: &[&str]) -> Operator {
        let child = Command::new(env!("CARGO_BIN_EXE_iter8"))
            .args([
                "operator",
                "--kubeconfig",
                config.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--prometheus-url",
                prometheus,
                "--metrics-namespace",
                "iter8",
                "--retry-after",
                "500ms",
                "--log-format",
                "json",
            ])
            .args(extra)
            .env_remove("KUBECONFIG")
            .env_remove("ITER8_WATCH_NAMESPACE")
            .env_remove("ITER8_LEADER_ELECT")
            .env_remove("ITER8_LEASE_DURATION")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("ITER8_GRAFANA_PUSH_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the iter8 binary starts");
        Operator { child, log }
    }

    /// Waits until `/readyz` answers 200 on `port` (it has reached the API server).
    async fn wait_ready(&mut self, port: u16) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while get(port, "/readyz").await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never ready; log:\n{}",
                self.log()
            );
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "exited early; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM to the process (by its PID).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Waits for the exit, at most `secs`.
    async fn wait(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free port of 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kubeconfig(dir: &Path, server: &FakeApiServer) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
users:
- name: fake
  user: {{}}
",
            server.url()
        ),
    )
    .unwrap();
    path
}

/// The answer of the stock telemetry-v2 templates, `secs` after the fake started: per version,
/// requests at 10/s (a count that grows, so that each decision sees new data, as
/// iter8-analytics requires to move traffic), a mean latency of 100 ms (the part 1 threshold
/// is 200 ms) and no errors.
fn prometheus_answer(query: &str, secs: f64) -> Value {
    let value = if query.contains("response_code") {
        "0".to_string()
    } else if query.contains("istio_request_duration") {
        "100".to_string()
    } else {
        format!("{}", 10 + (secs * 10.0) as u64)
    };
    let series = |workload: &str| {
        let metric =
            json!({"destination_workload": workload, "destination_workload_namespace": NS});
        (metric, value.as_str())
    };
    iter8_test_support::fixtures::vector(&[series("reviews-v2"), series("reviews-v3")])
}

/// A fake Prometheus answering the instant queries with [`prometheus_answer`].
async fn fake_prometheus() -> FakePrometheus {
    let started = std::time::Instant::now();
    FakePrometheus::queries_answered_by(move |q| {
        (200, prometheus_answer(q, started.elapsed().as_secs_f64()))
    })
    .await
}

/// The documents of an example manifest.
fn example(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(Value::is_object)
        .collect()
}

/// `kubectl apply -n <ns>` straight into the fake's store.
fn apply(server: &FakeApiServer, ns: &str, mut doc: Value) {
    doc["metadata"]["namespace"] = json!(ns);
    server
        .apply(&doc, "kubectl")
        .unwrap_or_else(|e| panic!("applying {doc}: {e:?}"));
}

/// The tutorial's namespace, the stock metrics ConfigMap in `iter8`, bookinfo and reviews-v3
/// (part 1's candidate).
fn bookinfo_with_reviews_v3(server: &FakeApiServer) {
    for doc in example("namespace.yaml") {
        apply(server, "", doc);
    }
    let stock = iter8_core::metrics_config::STOCK_TELEMETRY_V2;
    for doc in serde_saphyr::from_multiple::<Value>(stock).unwrap() {
        apply(server, "iter8", doc);
    }
    for doc in example("bookinfo-tutorial.yaml") {
        apply(server, NS, doc);
    }
    apply(server, NS, example("reviews-v3.yaml").remove(0));
}

fn experiment(server: &FakeApiServer) -> Value {
    server
        .object("iter8.tools", "experiments", NS, EXPERIMENT)
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_runs_part_1_and_stops_on_sigterm() {
    let server = FakeApiServer::start().await.unwrap();
    let prometheus = fake_prometheus().await;
    let dir = TempDir::new();
    let config = kubeconfig(&dir.0, &server);
    let port = free_port();
    let log = dir.0.join("operator.log");

    bookinfo_with_reviews_v3(&server);

    let mut operator = Operator::spawn(&config, &prometheus.url(), port, log, &[]);
    // Up and ready once it has reached the API server.
    operator.wait_ready(port).await;
    assert_eq!(get(port, "/healthz").await, (200, "ok\n".to_string()));

    // Watches that end and come back with a compacted resourceVersion get 410 Expired (in the
    // stream, as from the real server); the operator must list again and go on watching. The
    // controller's watches share one backoff (iter8_kubernetes::backoff: 100 ms doubling; with
    // kube-runtime's default, 0.8 s doubling, four watches failing together took 10-20 s).
    let before = server.requests().len();
    let ended = std::time::Instant::now();
    apply(
        &server,
        NS,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}}),
    );
    server.compact();
    server.end_watches();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let requests = server.requests();
        let relisted = |path: &str| {
            requests[before..]
                .iter()
                .any(|r| r.starts_with(&format!("GET {path}?")) && !r.contains("watch=true"))
        };
        if relisted("/apis/iter8.tools/v1alpha1/experiments")
            && relisted("/apis/apps/v1/deployments")
        {
            eprintln!("relisted {:?} after the watches ended", ended.elapsed());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no relist after 410: {:#?}\nlog:\n{}",
            &requests[before..],
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut exp = example("canary_reviews-v2_to_reviews-v3.yaml").remove(0);
    exp["spec"]["trafficControl"]["interval"] = json!("1s");
    exp["spec"]["trafficControl"]["maxIterations"] = json!(3);
    apply(&server, NS, exp);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut trail: Vec<String> = Vec::new();
    loop {
        let exp = experiment(&server);
        let step = format!(
            "{} {}/{}",
            exp["status"]["message"].as_str().unwrap_or("-"),
            exp["status"]["trafficSplitPercentage"]["baseline"],
            exp["status"]["trafficSplitPercentage"]["candidate"]
        );
        if trail.last() != Some(&step) {
            trail.push(step);
        }
        if exp["status"]["phase"] == "Completed" {
            assert_eq!(
                exp["status"]["message"],
                "ExperimentSucceeded: All Success Criteria Were Met",
                "{exp:#}\nlog:\n{}",
                operator.log()
            );
            assert_eq!(exp["status"]["currentIteration"], 3, "{exp:#}");
            assert_eq!(
                exp["status"]["trafficSplitPercentage"],
                json!({"baseline": 0, "candidate": 100})
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not completed: {exp:#}\nlog:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vs = server
        .object(
            "networking.istio.io",
            "virtualservices",
            NS,
            "reviews.bookinfo-iter8.svc.cluster.local.iter8-experiment",
        )
        .expect("the operator's VirtualService");
    let routes = vs["spec"]["http"][0]["route"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{vs:#}");
    assert_eq!(routes[0]["destination"]["subset"], "candidate");
    assert_eq!(routes[0]["weight"], 100);
    // The decisions were made on what Prometheus answered.
    let asked = prometheus.queries();
    assert!(
        asked
            .iter()
            .any(|q| q.contains("istio_request_duration_milliseconds_sum")),
        "{asked:#?}"
    );

    // Traffic moved 20 points per iteration while the criterion held.
    for step in [
        "Iteration 1 Started 80/20",
        "Iteration 2 Started 60/40",
        "Iteration 3 Started 40/60",
    ] {
        assert!(
            trail.iter().any(|t| t.ends_with(step)),
            "{step}: {trail:#?}"
        );
    }

    // The metrics follow the status write within the same reconcile (after its events).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (code, metrics) = get(port, "/metrics").await;
        assert_eq!(code, 200);
        if metrics.contains("iter8_experiments{phase=\"Completed\"} 1")
            || tokio::time::Instant::now() > deadline
        {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        metrics.contains("iter8_experiments{phase=\"Completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "iter8_candidate_weight_percent{namespace=\"bookinfo-iter8\",experiment=\"reviews-v3-rollout\"} 100"
        ),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics text: {metrics}");

    operator.terminate();
    let status = operator.wait(20).await;
    let log = operator.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}; log:\n{log}"
    );
    assert!(log.contains("operator stopped"), "{log}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "--log-format json: every line is JSON:\n{log}"
    );
    assert_eq!(get(port, "/healthz").await.0, 0, "the endpoints are closed");

    server.stop().await;
}

/// Every version of the experiment the fake API server stored, oldest first: its change
/// history replayed by a watch from the first resourceVersion (the watch ends after a second).
async fn history(server: &FakeApiServer) -> Vec<Value> {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let path = format!(
        "/apis/iter8.tools/v1alpha1/namespaces/{NS}/experiments?watch=true&resourceVersion=1\
         &fieldSelector=metadata.name%3D{EXPERIMENT}&timeoutSeconds=1"
    );
    // HTTP/1.0: the body is not chunked; it ends when the server closes the connection.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    // The server ends the watch after a second; this deadline is for a server that does not.
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the history watch ends")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") && !head.to_ascii_lowercase().contains("chunked"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let event: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(
                ["ADDED", "MODIFIED", "DELETED"].contains(&event["type"].as_str().unwrap_or("")),
                "{event}"
            );
            event["object"].clone()
        })
        .collect()
}

/// How often each `IterationUpdate` event message was recorded on the experiment.
fn iteration_events(server: &FakeApiServer) -> Vec<(String, i64)> {
    history::iteration_events(server, NS, EXPERIMENT)
}

fn lease_holder(server: &FakeApiServer) -> Option<String> {
    server
        .object("coordination.k8s.io", "leases", "iter8", "iter8-controller")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_process_is_replaced_after_its_lease_expires() {
    const LEASE: f64 = 3.0;
    const INTERVAL: f64 = 2.0;
    const ITERATIONS: u64 = 4;
    // Room for process scheduling and the new leader's first list on a loaded machine.
    const SLACK: f64 = 4.0;
    let server = FakeApiServer::start().await.unwrap();
    let prometheus = fake_prometheus().await;
    let dir = TempDir::new();
    let config = kubeconfig(&dir.0, &server);
    bookinfo_with_reviews_v3(&server);

    let names = ["iter8-a", "iter8-b"];
    let first_port = free_port();
    let ports = [
        first_port,
        (0..)
            .map(|_| free_port())
            .find(|p| *p != first_port)
            .unwrap(),
    ];
    let mut operators: Vec<Operator> = names
        .iter()
        .zip(ports)
        .map(|(name, port)| {
            Operator::spawn(
                &config,
                &prometheus.url(),
                port,
                dir.0.join(format!("{name}.log")),
                &[
                    "--leader-elect",
                    "--identity",
                    name,
                    "--lease-duration",
                    "3s",
                ],
            )
        })
        .collect();
    for (operator, port) in operators.iter_mut().zip(ports) {
        operator.wait_ready(port).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let holder = loop {
        if let Some(holder) = lease_holder(&server) {
            break holder;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody leads; logs:\n{}\n{}",
            operators[0].log(),
            operators[1].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let leader = names
        .iter()
        .position(|n| *n == holder)
        .unwrap_or_else(|| panic!("the Lease is held by {holder}"));
    let standby = 1 - leader;

    let mut exp = example("canary_reviews-v2_to_reviews-v3.yaml").remove(0);
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    exp["spec"]["trafficControl"]["maxIterations"] = json!(ITERATIONS);
    apply(&server, NS, exp);

    // Kill between reconciles, during iteration 2 (or a later one on a slow machine): a
    // reconcile is over once its Event is recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !iteration_events(&server)
        .iter()
        .any(|(m, _)| m == "Iteration 2 Started")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "iteration 2 never started: {:#}\nlog:\n{}",
            experiment(&server),
            operators[leader].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, standby_metrics) = get(ports[standby], "/metrics").await;
    assert_eq!(code, 200, "the standby serves its endpoints");
    assert!(
        !standby_metrics.contains("experiment=\"reviews-v3-rollout\""),
        "the standby does not reconcile: {standby_metrics}"
    );
    let at_kill = experiment(&server)["status"]["currentIteration"]
        .as_u64()
        .unwrap();
    assert!((2..ITERATIONS).contains(&at_kill), "{at_kill}");

    // SIGKILL: no chance to release the Lease.
    operators[leader].child.kill().unwrap();
    let killed = std::time::Instant::now();
    let status = operators[leader].child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    assert_eq!(
        lease_holder(&server).as_deref(),
        Some(names[leader]),
        "the killed leader still holds the Lease until it expires"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut new_holder, mut next_iteration) = (None, None);
    while new_holder.is_none() || next_iteration.is_none() {
        if new_holder.is_none() && lease_holder(&server).as_deref() == Some(names[standby]) {
            new_holder = Some(killed.elapsed());
        }
        if next_iteration.is_none()
            && experiment(&server)["status"]["currentIteration"].as_u64() > Some(at_kill)
        {
            next_iteration = Some(killed.elapsed());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no takeover: lease {:?}, {:#}\nlog:\n{}",
            lease_holder(&server),
            experiment(&server),
            operators[standby].log()
        );
        assert!(
            operators[standby].child.try_wait().unwrap().is_none(),
            "the standby exited; log:\n{}",
            operators[standby].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (new_holder, next_iteration) = (new_holder.unwrap(), next_iteration.unwrap());
    eprintln!(
        "killed in iteration {at_kill}: kill -> new Lease holder {new_holder:?}, \
         kill -> next iteration {next_iteration:?}"
    );
    assert!(
        next_iteration.as_secs_f64() <= LEASE + INTERVAL + SLACK,
        "no stall: the next iteration came {next_iteration:?} after the kill"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while experiment(&server)["status"]["phase"] != "Completed" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not completed: {:#}\nlog:\n{}",
            experiment(&server),
            operators[standby].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exp = experiment(&server);
    assert_eq!(
        exp["status"]["message"], "ExperimentSucceeded: All Success Criteria Were Met",
        "{exp:#}"
    );
    assert_eq!(
        exp["status"]["trafficSplitPercentage"],
        json!({"baseline": 0, "candidate": 100})
    );

    // The handover lost and repeated nothing: every iteration once, in order, an interval or
    // more after the previous one, and the one across the kill within the Lease's expiry.
    let history = history(&server).await;
    let runs = iterations(&history);
    history::assert_iterations_once(&runs, ITERATIONS, INTERVAL);
    // Whole seconds in the timestamps: one more of slack.
    let k = at_kill as usize;
    let across_kill = seconds_between(&runs[k - 1].1, &runs[k].1);
    assert!(
        across_kill <= LEASE + INTERVAL + SLACK + 1.0,
        "iteration {at_kill} -> {} took {across_kill}s: {runs:#?}",
        at_kill + 1
    );
    let expected: Vec<(String, i64)> = (1..=ITERATIONS)
        .map(|i| (format!("Iteration {i} Started"), 1))
        .collect();
    assert_eq!(iteration_events(&server), expected);
    assert_eq!(
        history.last().unwrap()["status"]["currentIteration"],
        ITERATIONS
    );
    assert_eq!(lease_holder(&server).as_deref(), Some(names[standby]));

    operators[standby].terminate();
    let status = operators[standby].wait(20).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}; log:\n{}",
        operators[standby].log()
    );
    // Unlike the kill, a clean stop releases the Lease.
    assert_eq!(lease_holder(&server), None);
    server.stop().await;
}
