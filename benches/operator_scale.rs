//! The operator at scale: runs the `iter8 operator` binary against a real etcd +
//! kube-apiserver (`scripts/control-plane.sh`) with N experiments, a fake Prometheus that
//! answers at once, a 10 s interval and fast abort on, and writes a markdown report.
//!
//! Run it with `scripts/bench-operator-scale.sh` (builds the release binary first), or:
//! `cargo bench -p iter8-benches --bench operator_scale -- --binary target/release/iter8
//! --n 100,1000 --report docs/operator-scale.md`.
//!
//! Layout: experiments come in namespaces of `--per-namespace` (10), each experiment with its
//! own Service and two Deployments, and each namespace with its own metrics ConfigMap whose
//! queries name the namespace (so the fake Prometheus answers with that namespace's versions
//! only, as a real one would for such queries). The operator runs as the install bundle's
//! ServiceAccount through a counting proxy, which tells its API requests apart by verb.
//!
//! Measured per N: API requests per experiment-iteration (reads = GET/LIST, writes =
//! POST/PUT/PATCH/DELETE; watches apart), the lag of each iteration after the first against
//! its schedule (`lastIncrementTime` of the previous one + interval), the first iteration's
//! delay after the operator started, the operator's CPU time and peak RSS (from /proc), and
//! the time until every experiment completed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use iter8_control_plane::{
    Behaviour, ControlPlane, FakePrometheus, FaultProxy, http_get, repo_root, run_iter8,
};
use serde_json::Value;

/// What to run.
struct Args {
    binary: PathBuf,
    sizes: Vec<usize>,
    per_namespace: usize,
    iterations: u32,
    interval_secs: u64,
    report: PathBuf,
    label: String,
    extra: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: operator_scale --binary PATH [--n 100,1000] [--per-namespace 10] \
         [--iterations 4] [--interval 10] [--report FILE] [--label TEXT] [-- operator flags]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        binary: repo_root().join("target/release/iter8"),
        sizes: vec![100],
        per_namespace: 10,
        iterations: 4,
        interval_secs: 10,
        report: PathBuf::from("operator-scale.md"),
        label: "this build".to_string(),
        extra: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            // `cargo bench` passes --bench to harness-less targets.
            "--bench" => {}
            "--binary" => args.binary = PathBuf::from(value()),
            "--n" => {
                args.sizes = value()
                    .split(',')
                    .map(|n| n.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--per-namespace" => args.per_namespace = value().parse().unwrap_or_else(|_| usage()),
            "--iterations" => args.iterations = value().parse().unwrap_or_else(|_| usage()),
            "--interval" => args.interval_secs = value().parse().unwrap_or_else(|_| usage()),
            "--report" => args.report = PathBuf::from(value()),
            "--label" => args.label = value(),
            "--" => {
                // `cargo bench` appends --bench after everything, so also after `--`.
                args.extra = it.by_ref().filter(|a| a != "--bench").collect();
            }
            _ => usage(),
        }
    }
    if args.per_namespace == 0 || args.sizes.iter().any(|n| n % args.per_namespace != 0) {
        eprintln!("every --n must be a multiple of --per-namespace");
        std::process::exit(2);
    }
    args
}

/// The figures of one run.
struct Figures {
    n: usize,
    iterations: u64,
    reads: u64,
    writes: u64,
    watches: u64,
    by_verb: BTreeMap<String, u64>,
    /// `verb resource` → requests, from the operator's own /metrics.
    by_resource: BTreeMap<String, u64>,
    lag_p50: f64,
    lag_p99: f64,
    lag_max: f64,
    first_p50: f64,
    first_p99: f64,
    cpu_secs: f64,
    /// kube-apiserver's and etcd's CPU time over the whole run (set-up included).
    control_plane_cpu_secs: f64,
    wall_secs: f64,
    peak_rss_mib: f64,
    all_done_secs: Option<f64>,
    completed: usize,
    prometheus_queries: u64,
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: this run takes minutes
    // and a release build, so it runs only as a bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("operator_scale: a benchmark; run it with `bash scripts/bench-operator-scale.sh`");
        return;
    }
    let args = parse_args();
    assert!(
        args.binary.exists(),
        "{} does not exist: build it with `cargo build --release --bin iter8`",
        args.binary.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows = Vec::new();
    for &n in &args.sizes {
        eprintln!("operator_scale: N = {n}");
        let figures = run(&args, &runtime, n);
        eprintln!("{}", row(&figures));
        rows.push(figures);
    }
    let report = report(&args, &rows);
    std::fs::write(&args.report, &report).expect("the report is written");
    println!("{report}");
}

fn run(args: &Args, runtime: &tokio::runtime::Runtime, n: usize) -> Figures {
    let cp = ControlPlane::start().unwrap_or_else(|e| panic!("control plane: {e}"));
    cp.apply_crds(
        &std::fs::read_to_string(
            repo_root().join("adapters/istio/tests/data/networking-crds.yaml"),
        )
        .expect("the Istio CRDs"),
    );
    cp.apply_crds(&run_iter8(&args.binary, &["install"]));
    // Each namespace's own ConfigMap is read instead of the stock one.
    cp.kubectl_ok(
        &["delete", "configmap", "-n", "iter8", "iter8config-metrics"],
        None,
    );
    let stock = std::fs::read_to_string(
        repo_root().join("core/src/stock/iter8config-metrics-telemetry-v2.yaml"),
    )
    .expect("the stock metrics ConfigMap");

    let prometheus = runtime.block_on(FakePrometheus::per_version("unused"));
    for i in 0..args.per_namespace {
        prometheus.set(&format!("svc-{i}-v1"), Behaviour::ok(100.0, 150.0));
        prometheus.set(&format!("svc-{i}-v2"), Behaviour::ok(90.0, 140.0));
    }
    let namespaces = n / args.per_namespace;
    let mut targets = String::new();
    let mut experiments = String::new();
    for j in 0..namespaces {
        let ns = format!("bench-{j}");
        write!(
            targets,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        )
        .ok();
        targets.push_str(
            &stock
                .replace("namespace: iter8", &format!("namespace: {ns}"))
                .replace(
                    "reporter='source'",
                    &format!("reporter='source', destination_workload_namespace='{ns}'"),
                ),
        );
        targets.push('\n');
        for i in 0..args.per_namespace {
            targets.push_str(&target_objects(&ns, i));
            experiments.push_str(&experiment(&ns, i, args.interval_secs, args.iterations));
        }
    }
    // Namespaces first: kubectl creates objects in the order given.
    cp.kubectl_ok(&["create", "-f", "-"], Some(&targets));
    let watch_file = cp.dir().join("experiments.watch.json");
    let watch = Command::new(cp.bin_dir().join("kubectl"))
        .args(["get", "experiments", "-A", "--watch", "-o", "json"])
        .env("KUBECONFIG", cp.kubeconfig())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&watch_file).expect("watch file"))
        .stderr(Stdio::null())
        .spawn()
        .map(Running)
        .expect("kubectl starts");
    cp.kubectl_ok(&["create", "-f", "-"], Some(&experiments));

    let proxy = runtime.block_on(FaultProxy::start(&cp.server(), &cp.ca_pem()));
    let kubeconfig = cp.service_account_kubeconfig_via("iter8", "iter8-controller", proxy.url());
    let log = cp.dir().join("operator.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let started = Utc::now();
    let clock = Instant::now();
    let operator = Command::new(&args.binary)
        .args([
            "operator",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8 path"),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--prometheus-url",
            &prometheus.url(),
            "--metrics-namespace",
            "iter8",
            "--abort-check-every",
            "5s",
            "--log-format",
            "json",
        ])
        .args(&args.extra)
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("the operator starts");
    let pid = operator.id();
    let mut operator = Running(operator);

    // Every experiment ends after `iterations` intervals; allow three times that.
    let limit = Duration::from_secs(args.interval_secs * u64::from(args.iterations) * 3 + 120);
    let mut completed = 0;
    while clock.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(status)) = operator.0.try_wait() {
            panic!(
                "the operator exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let Some(list) = list_experiments(&cp) else {
            continue;
        };
        completed = list
            .iter()
            .filter(|e| e["status"]["phase"] == "Completed")
            .count();
        if completed == n {
            break;
        }
    }
    let wall_secs = clock.elapsed().as_secs_f64();
    let cpu_secs = cpu_seconds(pid);
    // The control plane shares the machine: how busy it was tells whether it set the pace.
    let control_plane_cpu_secs: f64 = ["kube-apiserver.pid", "etcd.pid"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(cp.dir().join(f)).ok())
        .filter_map(|pid| pid.trim().parse::<u32>().ok())
        .map(cpu_seconds)
        .sum();
    let peak_rss_mib = peak_rss_kib(pid) / 1024.0;
    let by_verb = proxy.seen();
    let (_, metrics) = http_get(port, "/metrics");
    let by_resource = api_requests(&metrics);
    drop(operator);
    // The operator's log stays beside the report (the control plane's directory goes).
    let kept_log = args.report.with_extension(format!("{n}.log"));
    if let Err(e) = std::fs::copy(&log, &kept_log) {
        eprintln!(
            "operator_scale: could not keep the log at {}: {e}",
            kept_log.display()
        );
    }
    // The watch has caught up once the last status the list showed is in it.
    std::thread::sleep(Duration::from_secs(2));
    drop(watch);

    // The operator has stopped: the API server answers again.
    let final_list = list_experiments(&cp).expect("the experiments after the operator stopped");
    let iterations: u64 = final_list
        .iter()
        .filter_map(|e| e["status"]["currentIteration"].as_u64())
        .sum();
    let all_done_secs = (completed == n)
        .then(|| {
            final_list
                .iter()
                .filter_map(|e| timestamp(&e["status"]["endTimestamp"]))
                .max()
                .map(|end| (end - started).as_seconds_f64())
        })
        .flatten();
    let (lags, firsts) = lags(&watch_file, started, args.interval_secs as f64);
    let count = |verbs: &[&str]| verbs.iter().filter_map(|v| by_verb.get(*v)).sum::<u64>();
    Figures {
        n,
        iterations,
        reads: count(&["GET"]),
        writes: count(&["POST", "PUT", "PATCH", "DELETE"]),
        watches: count(&["WATCH"]),
        by_verb,
        by_resource,
        lag_p50: percentile(&lags, 50.0),
        lag_p99: percentile(&lags, 99.0),
        lag_max: lags.last().copied().unwrap_or(0.0),
        first_p50: percentile(&firsts, 50.0),
        first_p99: percentile(&firsts, 99.0),
        cpu_secs,
        control_plane_cpu_secs,
        wall_secs,
        peak_rss_mib,
        all_done_secs,
        completed,
        prometheus_queries: prometheus.queries().len() as u64,
    }
}

/// Experiment `i`'s Service and its two Deployments (no pods run: there is no scheduler). The
/// Service is headless: the control plane's service IP range holds only a few hundred.
fn target_objects(ns: &str, i: usize) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\n\
         spec:\n  clusterIP: None\n  selector:\n    app: svc-{i}\n  ports:\n  - name: http\n    port: 9080\n"
    );
    for v in ["v1", "v2"] {
        write!(
            out,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-{i}-{v}\n  \
             namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      \
             app: svc-{i}\n      version: {v}\n  template:\n    metadata:\n      labels:\n        \
             app: svc-{i}\n        version: {v}\n    spec:\n      containers:\n      - name: app\n        \
             image: example.invalid/app:{v}\n"
        )
        .ok();
    }
    out
}

/// Experiment `i`: the tutorial's canary with a stop-on-failure criterion (fast abort on).
fn experiment(ns: &str, i: usize, interval: u64, iterations: u32) -> String {
    format!(
        "---\napiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: exp-{i}\n  \
         namespace: {ns}\nspec:\n  targetService:\n    name: svc-{i}\n    apiVersion: v1\n    \
         baseline: svc-{i}-v1\n    candidate: svc-{i}-v2\n  trafficControl:\n    \
         strategy: check_and_increment\n    interval: {interval}s\n    trafficStepSize: 20\n    \
         maxIterations: {iterations}\n    maxTrafficPercentage: 80\n  analysis:\n    \
         successCriteria:\n      - metricName: iter8_latency\n        toleranceType: threshold\n        \
         tolerance: 200\n        sampleSize: 5\n        stopOnFailure: true\n"
    )
}

/// Every Experiment; `None` when the API server does not answer (kubectl gives up after 20 s:
/// an operator can load it that much), so the caller asks again later.
fn list_experiments(cp: &ControlPlane) -> Option<Vec<Value>> {
    let out = cp.kubectl(&["get", "experiments", "-A", "-o", "json"], None);
    if !out.status.success() {
        eprintln!(
            "operator_scale: listing the experiments failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("a list");
    Some(list["items"].as_array().cloned().unwrap_or_default())
}

fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// From the watch's history: each later iteration's lag behind its schedule, and each first
/// iteration's delay after `started`, in seconds, sorted.
fn lags(watch_file: &PathBuf, started: DateTime<Utc>, interval: f64) -> (Vec<f64>, Vec<f64>) {
    let text = std::fs::read_to_string(watch_file).unwrap_or_default();
    let mut seen: BTreeMap<String, BTreeMap<u64, DateTime<Utc>>> = BTreeMap::new();
    for exp in serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map_while(Result::ok)
    {
        let key = format!(
            "{}/{}",
            exp["metadata"]["namespace"].as_str().unwrap_or(""),
            exp["metadata"]["name"].as_str().unwrap_or("")
        );
        let s = &exp["status"];
        if let (Some(i), Some(at)) = (
            s["currentIteration"].as_u64().filter(|i| *i > 0),
            timestamp(&s["lastIncrementTime"]),
        ) {
            seen.entry(key).or_default().entry(i).or_insert(at);
        }
    }
    let mut lags = Vec::new();
    let mut firsts = Vec::new();
    for runs in seen.values() {
        if let Some(first) = runs.get(&1) {
            firsts.push((*first - started).as_seconds_f64());
        }
        for (i, at) in runs {
            if let Some(previous) = runs.get(&(i - 1)) {
                lags.push((*at - *previous).as_seconds_f64() - interval);
            }
        }
    }
    lags.sort_by(f64::total_cmp);
    firsts.sort_by(f64::total_cmp);
    (lags, firsts)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// User + system CPU time of a live process, in seconds (from /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold blanks) start at "state" (field 3).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after "state".
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Peak resident set size of a live process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// Stops a child by its PID (SIGTERM, then SIGKILL after 10 s).
/// A process the benchmark started, stopped by its PID when dropped (also on a panic).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn row(f: &Figures) -> String {
    let per = |x: u64| x as f64 / f.iterations.max(1) as f64;
    format!(
        "| {} | {}/{} | {} | {:.2} | {:.2} | {} | {:.2} / {:.2} (max {:.2}) | {:.2} / {:.2} | {:.1}% | {:.0} | {} |",
        f.n,
        f.completed,
        f.n,
        f.iterations,
        per(f.reads),
        per(f.writes),
        f.watches,
        f.lag_p50,
        f.lag_p99,
        f.lag_max,
        f.first_p50,
        f.first_p99,
        100.0 * f.cpu_secs / f.wall_secs.max(1e-9),
        f.peak_rss_mib,
        f.all_done_secs
            .map_or("not all".to_string(), |s| format!("{s:.1}")),
    )
}

fn report(args: &Args, rows: &[Figures]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "### `iter8 operator` at scale: {}\n\n{} experiments a namespace, {} s interval, {} \
         iterations, fast abort every 5 s, Prometheus answering at once. Reads are GET/LIST, \
         writes POST/PUT/PATCH/DELETE, per experiment-iteration; lag is an iteration's start \
         behind its schedule (the previous one + interval); first is the first iteration's \
         delay after the operator started; CPU is the operator's share of one core from its \
         start until all completed.\n",
        args.label, args.per_namespace, args.interval_secs, args.iterations
    )
    .ok();
    writeln!(
        out,
        "| N | completed | iterations | reads/it | writes/it | watches | lag p50 / p99 s | first p50 / p99 s | CPU | peak RSS MiB | all done s |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    .ok();
    for f in rows {
        writeln!(out, "{}", row(f)).ok();
    }
    writeln!(out).ok();
    for f in rows {
        writeln!(
            out,
            "- N = {}: requests by verb {:?}; {} Prometheus queries; CPU {:.1} s over {:.1} s \
             (kube-apiserver and etcd: {:.1} s, set-up included)",
            f.n, f.by_verb, f.prometheus_queries, f.cpu_secs, f.wall_secs, f.control_plane_cpu_secs
        )
        .ok();
        let per_iteration: Vec<String> = f
            .by_resource
            .iter()
            .map(|(what, n)| format!("{what} {:.2}", *n as f64 / f.iterations.max(1) as f64))
            .collect();
        writeln!(
            out,
            "  - per iteration, from the operator's `iter8_kubernetes_api_requests_total`: {}",
            per_iteration.join(", ")
        )
        .ok();
    }
    out
}

/// `verb resource` → count, from the OpenMetrics lines
/// `iter8_kubernetes_api_requests_total{verb="patch",resource="experiments"} 12`.
fn api_requests(metrics: &str) -> BTreeMap<String, u64> {
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("iter8_kubernetes_api_requests_total{"))
        .filter_map(|l| {
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((
                format!("{} {}", label(l, "verb")?, label(l, "resource")?),
                count,
            ))
        })
        .collect()
}
