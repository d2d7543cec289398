//! The chaos run on the real control plane: the `iter8 operator` binary, behind a fault proxy
//! to a real kube-apiserver, runs experiments (20 by default) while random faults hit it: API
//! answers 500, 429 and 403, slow answers, dropped watches, Prometheus outages and garbage
//! answers, the operator killed with SIGKILL and started again, candidate Deployments deleted.
//! After the faults stop it waits for every experiment and checks the invariants through the
//! API server; it prints a report (also written to `target/chaos-report-cluster.md`) and exits
//! non-zero on any violation.
//!
//! `bash scripts/chaos.sh cluster` (`cargo bench --profile dev --bench chaos_cluster --
//! [--experiments N] [--seed S]`).

#[path = "../cluster/mod.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cluster::*;
use iter8_benches::chaos;
use iter8_control_plane::{Behaviour, FakePrometheus, FaultProxy};
use iter8_core::TrafficSplit;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NS: &str = "chaos";
const INTERVAL_SECS: u64 = 2;
const ITERATIONS: u64 = 4;
/// Experiments are created one a second (at least over 30 s); faults last until this long
/// after the last one.
const MIN_CREATE_OVER: Duration = Duration::from_secs(30);
const FAULTY_AFTER_LAST: Duration = Duration::from_secs(40);
/// How long everything may take to complete once the faults stop.
const DRAIN: Duration = Duration::from_secs(240);
const P_BAD_CANDIDATE: f64 = 0.3;
const P_DELETED_CANDIDATE: f64 = 0.15;

struct Planned {
    name: String,
    bad_candidate: bool,
    delete_candidate_at: Option<Instant>,
    candidate_deleted: bool,
    recorder: Option<Recorder>,
}

fn targets(name: &str) -> String {
    let deployment = |version: &str| {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}-{version}, labels: {{app: {name}, version: {version}}}}}
spec:
  selector: {{matchLabels: {{app: {name}, version: {version}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: {version}}}}}
    spec: {{containers: [{{name: app, image: example.invalid/{name}:{version}}}]}}
---
"
        )
    };
    format!(
        "{}{}apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 9080}}]
",
        deployment("v1"),
        deployment("v2")
    )
}

fn experiment(name: &str) -> String {
    format!(
        "apiVersion: iter8.tools/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  targetService: {{name: {name}, apiVersion: v1, baseline: {name}-v1, candidate: {name}-v2}}
  trafficControl:
    strategy: check_and_increment
    interval: {INTERVAL_SECS}s
    trafficStepSize: 20
    maxIterations: {ITERATIONS}
    maxTrafficPercentage: 80
  analysis:
    successCriteria:
      - {{metricName: iter8_latency, toleranceType: threshold, tolerance: 200, sampleSize: 5}}
"
    )
}

/// Deploys an experiment's versions (the fake Prometheus serves them), starts recording its
/// versions, and applies it.
fn create(cp: &iter8_control_plane::ControlPlane, prometheus: &FakePrometheus, p: &mut Planned) {
    prometheus.set(&format!("{}-v1", p.name), Behaviour::ok(50.0, 60.0));
    let candidate_ms = if p.bad_candidate { 400.0 } else { 40.0 };
    prometheus.set(
        &format!("{}-v2", p.name),
        Behaviour::ok(candidate_ms, candidate_ms + 10.0),
    );
    apply_in(cp, NS, &targets(&p.name));
    p.recorder = Some(Recorder::start(cp, "experiments", NS, &p.name));
    apply_in(cp, NS, &experiment(&p.name));
}

/// The operator over the run's namespace, through the proxy (as the end-to-end tests run it:
/// the fake Prometheus answers for one namespace).
fn operator(kubeconfig: &std::path::Path, prometheus: &str) -> Operator {
    Operator::spawn(kubeconfig, NS, prometheus, &[])
}

/// The split that the experiment's VirtualService serves.
fn served(cp: &iter8_control_plane::ControlPlane, name: &str) -> Option<TrafficSplit> {
    let vs = object(
        cp,
        "virtualservice",
        NS,
        &format!("{name}.{NS}.svc.cluster.local.iter8-experiment"),
    )?;
    let mut weights = TrafficSplit {
        baseline: 0,
        candidate: 0,
    };
    for r in vs["spec"]["http"][0]["route"].as_array()? {
        let w = u32::try_from(r["weight"].as_u64().unwrap_or(0)).ok()?;
        match r["destination"]["subset"].as_str() {
            Some("baseline") => weights.baseline += w,
            Some("candidate") => weights.candidate += w,
            _ => {}
        }
    }
    Some(weights)
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: the chaos run takes
    // minutes, so it runs only as a bench (bash scripts/chaos.sh cluster).
    if !std::env::args().any(|a| a == "--bench") {
        println!("chaos_cluster: a benchmark; run it with `bash scripts/chaos.sh cluster`");
        return;
    }
    let chaos::Options {
        experiments: n,
        seed,
    } = chaos::Options::from_command_line(20);
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let cp = cluster();
    let prometheus = runtime.block_on(FakePrometheus::per_version(NS));
    let proxy = runtime.block_on(FaultProxy::start(&cp.server(), &cp.ca_pem()));
    let _guard = runtime.enter();
    namespace(cp, NS);
    let kubeconfig = cp.service_account_kubeconfig_via("iter8", "iter8-controller", proxy.url());
    let mut operator = operator(&kubeconfig, &prometheus.url());
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut violations: Vec<String> = Vec::new();

    let create_over = MIN_CREATE_OVER.max(Duration::from_secs(n as u64));
    let every = create_over / n.max(1) as u32;
    let mut plan: Vec<Planned> = (0..n)
        .map(|i| Planned {
            name: format!("svc-{i}"),
            bad_candidate: rng.random_bool(P_BAD_CANDIDATE),
            delete_candidate_at: None,
            candidate_deleted: false,
            recorder: None,
        })
        .collect();
    let faults_until = Instant::now() + create_over + FAULTY_AFTER_LAST;
    let mut next_create = Instant::now();
    let mut created = 0;
    let mut prometheus_back_at: Option<Instant> = None;
    let mut operator_back_at: Option<Instant> = None;
    while Instant::now() < faults_until {
        if created < n && Instant::now() >= next_create {
            let p = &mut plan[created];
            create(cp, &prometheus, p);
            if rng.random_bool(P_DELETED_CANDIDATE) {
                let after = rng.random_range(2..(INTERVAL_SECS * ITERATIONS));
                p.delete_candidate_at = Some(Instant::now() + Duration::from_secs(after));
            }
            created += 1;
            next_create += every;
        }
        for p in &mut plan {
            if p.delete_candidate_at.is_some_and(|t| Instant::now() >= t) {
                p.delete_candidate_at = None;
                let running = object(cp, "experiment", NS, &p.name)
                    .is_some_and(|e| e["status"]["phase"] != "Completed");
                if running {
                    cp.kubectl_ok(
                        &["delete", "deployment", "-n", NS, &format!("{}-v2", p.name)],
                        None,
                    );
                    p.candidate_deleted = true;
                    *counts.entry("candidate Deployment deleted").or_default() += 1;
                }
            }
        }
        if prometheus_back_at.is_some_and(|t| Instant::now() >= t) {
            prometheus.fail_with(None);
            prometheus.answer_garbage(false);
            prometheus_back_at = None;
        }
        if operator_back_at.is_some_and(|t| Instant::now() >= t) {
            operator = self::operator(&kubeconfig, &prometheus.url());
            operator_back_at = None;
        }
        // One fault a second on average.
        match rng.random_range(0..100u32) {
            0..=24 => {
                let status = [500, 429, 403][rng.random_range(0..3usize)];
                let requests = rng.random_range(1..5u32);
                // Counted by the proxy (a burst not yet used up is replaced by the next).
                proxy.fail_next(requests, status, (status == 429).then_some(1));
            }
            25..=34 => {
                proxy.drop_watches();
                *counts.entry("watches dropped").or_default() += 1;
            }
            35..=39 if prometheus_back_at.is_none() => {
                let garbage = rng.random_bool(0.5);
                if garbage {
                    prometheus.answer_garbage(true);
                    *counts.entry("Prometheus garbage periods").or_default() += 1;
                } else {
                    prometheus.fail_with(Some(503));
                    *counts.entry("Prometheus outages").or_default() += 1;
                }
                prometheus_back_at =
                    Some(Instant::now() + Duration::from_secs(rng.random_range(2..8)));
            }
            40..=44 => {
                proxy.slow(Duration::from_millis(rng.random_range(200..2000)));
                *counts.entry("slow API periods").or_default() += 1;
            }
            45..=52 => proxy.slow(Duration::ZERO),
            53..=55 if operator_back_at.is_none() => {
                operator.signal("KILL");
                let _ = operator.child.wait();
                *counts.entry("operator SIGKILLed").or_default() += 1;
                operator_back_at =
                    Some(Instant::now() + Duration::from_secs(rng.random_range(1..4)));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // The faults stop.
    proxy.slow(Duration::ZERO);
    prometheus.fail_with(None);
    prometheus.answer_garbage(false);
    if operator_back_at.is_some() {
        operator = self::operator(&kubeconfig, &prometheus.url());
    }
    while created < n {
        // Fewer seconds than experiments: create the rest now.
        create(cp, &prometheus, &mut plan[created]);
        created += 1;
    }

    let waiting_for_candidate = |p: &Planned, e: &serde_json::Value| {
        let status = &e["status"];
        let started = !status["startTimestamp"].is_null();
        chaos::waits_for_candidate(p.candidate_deleted, started, status["message"].as_str())
    };
    let drain_deadline = Instant::now() + DRAIN;
    while Instant::now() < drain_deadline {
        let settled = plan.iter().all(|p| {
            object(cp, "experiment", NS, &p.name).is_some_and(|e| {
                e["status"]["phase"] == "Completed" || waiting_for_candidate(p, &e)
            })
        });
        if settled {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }

    // The invariants.
    if let Ok(Some(status)) = operator.child.try_wait() {
        violations.push(format!("the operator exited ({status})"));
    }
    let log = operator.log();
    if log.contains("panicked") {
        violations.push("the operator logged a panic".to_string());
    }
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    for p in &plan {
        let Some(exp) = object(cp, "experiment", NS, &p.name) else {
            violations.push(format!("{}: gone", p.name));
            continue;
        };
        let s = &exp["status"];
        if s["phase"] != "Completed" {
            if waiting_for_candidate(p, &exp) {
                *outcomes.entry(chaos::WAITING_FOR_CANDIDATE).or_default() += 1;
            } else {
                violations.push(format!(
                    "{}: stuck in {} at iteration {}: {}",
                    p.name, s["phase"], s["currentIteration"], s["message"]
                ));
            }
            continue;
        }
        match serde_json::from_value::<TrafficSplit>(s["trafficSplitPercentage"].clone()) {
            Ok(split) => chaos::check_completed(
                &p.name,
                split,
                served(cp, &p.name),
                p.bad_candidate,
                p.candidate_deleted,
                &mut violations,
                &mut outcomes,
            ),
            // A violation; its iterations are still checked below.
            Err(_) => violations.push(format!("{}: completed without a traffic split", p.name)),
        }
        let runs = iterations(&p.recorder.as_ref().expect("recorded").history());
        let numbers: Vec<u64> = runs.iter().map(|(i, _)| *i).collect();
        chaos::check_iterations(&p.name, &numbers, &mut violations, &mut outcomes);
    }

    let mut report = String::new();
    let _ = writeln!(report, "# Chaos run on the real control plane\n");
    let _ = writeln!(
        report,
        "{n} experiments (seed {seed}) in namespace {NS}, {INTERVAL_SECS}s intervals, \
         {ITERATIONS} iterations, created over {}s; faults until {}s after the last; \
         {:.0}s of wall time in all.\n",
        create_over.as_secs(),
        FAULTY_AFTER_LAST.as_secs(),
        started.elapsed().as_secs_f64()
    );
    let faults_injected = counts
        .iter()
        .map(|(what, count)| (what.to_string(), *count))
        .chain(
            proxy
                .injected()
                .into_iter()
                .map(|(status, count)| (format!("API requests answered {status}"), count)),
        );
    chaos::write_tables(&mut report, faults_injected, &outcomes, &violations);
    chaos::publish(
        &report,
        concat!(env!("CARGO_MANIFEST_DIR"), "/target"),
        "chaos-report-cluster.md",
    );
    if !violations.is_empty() {
        if !log.is_empty() {
            eprintln!("operator log (last run):\n{log}");
        }
        std::process::exit(1);
    }
}
