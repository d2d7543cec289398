//! Shared by the tests that run the `iter8` binary against the real control plane
//! (`iter8-control-plane`): installing iter8 and the Istio CRDs once per test binary, running
//! the operator as the install bundle's ServiceAccount, reading the seed's tables.

#![allow(dead_code)] // not every test file uses each helper

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use iter8_control_plane::ControlPlane;
#[allow(unused_imports)] // not every test file uses each
pub use iter8_control_plane::{assert_iterations_once, http_get, iterations, seconds_between};
use iter8_test_support::FakePrometheus;

pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bookinfo");
/// The Istio networking CRDs (1.x, as Istio ships them), kept beside the Istio adapter's tests.
pub const ISTIO_CRDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/adapters/istio/tests/data/networking-crds.yaml"
);

/// Runs `iter8 <args>` and returns its standard output.
pub fn iter8(args: &[&str]) -> String {
    iter8_control_plane::run_iter8(Path::new(env!("CARGO_BIN_EXE_iter8")), args)
}

/// The control plane of this test binary with `iter8 install`'s bundle and the Istio
/// networking CRDs applied (once).
pub fn cluster() -> &'static ControlPlane {
    static READY: OnceLock<()> = OnceLock::new();
    let cp = ControlPlane::shared();
    READY.get_or_init(|| {
        cp.apply_crds(&std::fs::read_to_string(ISTIO_CRDS).expect("Istio CRDs"));
        cp.apply_crds(&iter8(&["install"]));
    });
    cp
}

/// An example manifest's text, with the experiment interval shortened to `interval` (the seed
/// uses 30 s; everything else stays as the seed has it).
pub fn example(file: &str, interval: &str) -> String {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).expect("example exists");
    text.replace("interval: 30s", &format!("interval: {interval}"))
}

/// A namespace, created if missing.
pub fn namespace(cp: &ControlPlane, name: &str) {
    cp.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    ));
}

/// `kubectl apply -n <ns>` of a manifest.
pub fn apply_in(cp: &ControlPlane, ns: &str, manifest: &str) -> String {
    cp.kubectl_ok(
        &[
            "apply",
            "-n",
            ns,
            "--server-side",
            "--field-manager=kubectl",
            "-f",
            "-",
        ],
        Some(manifest),
    )
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The operator process, killed by its PID when dropped.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Operator {
    /// `iter8 operator` with `kubeconfig`, watching `namespace`, metrics from `prometheus`.
    pub fn spawn(kubeconfig: &Path, namespace: &str, prometheus: &str, extra: &[&str]) -> Operator {
        Operator::spawn_with_env(kubeconfig, namespace, prometheus, extra, &[])
    }

    /// [`Operator::spawn`] with environment variables set.
    pub fn spawn_with_env(
        kubeconfig: &Path,
        namespace: &str,
        prometheus: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "iter8-operator-{}-{namespace}-{port}.log",
            std::process::id()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_iter8"))
            .args([
                "operator",
                "--kubeconfig",
                kubeconfig.to_str().expect("utf-8 path"),
                "--namespace",
                namespace,
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
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the iter8 binary starts");
        Operator { child, log, port }
    }

    /// What the operator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `KILL`, `TERM`) to the process by its PID.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the operator exited ({status}); log:\n{}", self.log());
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("KILL");
        }
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("operator log:\n{}", self.log());
        }
    }
}

/// The cells of a `kubectl get experiments` table (columns split on runs of two or more
/// blanks, as the seed's tables are read).
pub fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|row| {
            row.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// Polls `kubectl <args>` until its table's cells equal `expected`, for at most `timeout`.
pub fn wait_for_table(
    cp: &ControlPlane,
    args: &[&str],
    expected: &[Vec<String>],
    timeout: Duration,
    operator: &mut Operator,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        operator.assert_running();
        let out = cp.kubectl(args, None);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if cells(&last) == expected {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "kubectl {} never printed\n{expected:#?}\nlast output:\n{last}",
        args.join(" ")
    );
}

/// Every version of the objects a `kubectl get --watch` saw, recorded from before they were
/// created (a real API server keeps no history a test could replay later).
pub struct Recorder {
    child: Child,
    file: PathBuf,
}

impl Recorder {
    /// Watches `kind` objects named `name` in `ns`.
    pub fn start(cp: &ControlPlane, kind: &str, ns: &str, name: &str) -> Recorder {
        let file = std::env::temp_dir().join(format!(
            "iter8-watch-{}-{ns}-{name}-{}.json",
            std::process::id(),
            free_port()
        ));
        let child = Command::new(cp.bin_dir().join("kubectl"))
            .args([
                "get",
                kind,
                "-n",
                ns,
                "--field-selector",
                &format!("metadata.name={name}"),
                "--watch",
                "-o",
                "json",
            ])
            .env("KUBECONFIG", cp.kubeconfig())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&file).expect("watch file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl starts");
        Recorder { child, file }
    }

    /// The objects seen so far, oldest first.
    pub fn history(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<serde_json::Value>()
            .map_while(Result::ok)
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// How often each `IterationUpdate` Event message was recorded on experiment `name` (summing
/// `count` over aggregated Events and over Events of different operator instances).
pub fn iteration_events(cp: &ControlPlane, ns: &str, name: &str) -> Vec<(String, i64)> {
    let out = cp.kubectl_ok(&["get", "events", "-n", ns, "-o", "json"], None);
    let list: serde_json::Value = serde_json::from_str(&out).expect("an event list");
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for e in list["items"].as_array().into_iter().flatten() {
        if e["involvedObject"]["name"] == name && e["reason"] == "IterationUpdate" {
            *counts
                .entry(e["message"].as_str().unwrap_or("").to_string())
                .or_default() += e["count"].as_i64().unwrap_or(1);
        }
    }
    counts.into_iter().collect()
}

/// One object as JSON (`None` if it does not exist).
pub fn object(cp: &ControlPlane, kind: &str, ns: &str, name: &str) -> Option<serde_json::Value> {
    let out = cp.kubectl(&["get", kind, name, "-n", ns, "-o", "json"], None);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// A namespace with bookinfo's Deployments and Services and reviews-v3, as the operator tests
/// start: returns a fake Prometheus (serving on `runtime`) told that reviews-v2 and reviews-v3
/// serve, and a kubeconfig of the install bundle's ServiceAccount for the operator, reaching
/// the API server through `via` (a fault proxy's URL) when given.
pub fn bookinfo_with_reviews_v3(
    runtime: &tokio::runtime::Runtime,
    ns: &str,
    via: Option<&str>,
) -> (FakePrometheus, PathBuf) {
    let cp = cluster();
    let prometheus = runtime.block_on(FakePrometheus::per_version(ns));
    namespace(cp, ns);
    apply_in(cp, ns, &example("bookinfo-tutorial.yaml", "30s"));
    apply_in(cp, ns, &example("reviews-v3.yaml", "30s"));
    let versions = iter8_test_support::tutorial_versions();
    for v in ["reviews-v2", "reviews-v3"] {
        prometheus.set(v, versions[v]);
    }
    let kubeconfig = match via {
        Some(url) => cp.service_account_kubeconfig_via("iter8", "iter8-controller", url),
        None => cp.service_account_kubeconfig("iter8", "iter8-controller"),
    };
    (prometheus, kubeconfig)
}

/// Part 1's experiment with `interval` and `iterations`.
pub fn part1_experiment(interval: &str, iterations: u32) -> String {
    example("canary_reviews-v2_to_reviews-v3.yaml", interval)
        .replace("maxIterations: 8", &format!("maxIterations: {iterations}"))
}

/// Polls `check` every 100 ms until it holds, for at most `timeout` (panics with `what`).
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
