//! 10,000 concurrent simulated experiments, 10 iterations each, through the core's driver:
//! wall time (criterion) and peak memory (VmHWM).
//!
//! `cargo bench -p iter8-sim --bench many_experiments` (add `-- --once` for one measured run;
//! `ITER8_FLEET_EXPERIMENTS`, `ITER8_FLEET_INTERVAL` and `ITER8_FLEET_RATE` change the fleet).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use iter8_core::Experiment;
use iter8_sim::cluster::{Deployment, Labels, Object, Service};
use iter8_sim::profile::{Latency, Profile, VersionProfile};
use iter8_sim::store::ExperimentId;
use iter8_sim::{Sim, SimTime, Target};

const SPEC: FleetSpec = FleetSpec {
    experiments: 10_000,
    iterations: 10,
    interval_secs: 10,
    rate: 10.0,
    seed: 1,
};

/// Whether this is a measured run (`cargo bench` passes `--bench`); under `cargo test` the
/// bench only runs a small fleet, to check that it works.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The spec, with `ITER8_FLEET_EXPERIMENTS` overriding the count (for quick looks).
fn spec() -> FleetSpec {
    let experiments = std::env::var("ITER8_FLEET_EXPERIMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring() { SPEC.experiments } else { 100 });
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    FleetSpec {
        experiments,
        interval_secs: env("ITER8_FLEET_INTERVAL").unwrap_or(SPEC.interval_secs),
        rate: env("ITER8_FLEET_RATE").map(f64::from).unwrap_or(SPEC.rate),
        ..SPEC
    }
}

fn once() -> FleetOutcome {
    let spec = spec();
    let (mut sim, ids) = build(&spec).unwrap_or_else(|e| panic!("building the fleet: {e}"));
    run(&mut sim, &ids, &spec)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fleet");
    group.sample_size(10);
    group.bench_function("10k experiments x 10 iterations", |b| b.iter(once));
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    // One measured run first, so that the peak memory is that of one run.
    let t = Instant::now();
    let outcome = once();
    let wall = t.elapsed();
    println!(
        "fleet: {} experiments x {} iterations ({}s interval, {} req/s each): {} completed, {} succeeded, {} reconciles, {} requests, {} s virtual; wall {:.3} s; peak RSS {} MiB",
        spec().experiments,
        SPEC.iterations,
        spec().interval_secs,
        spec().rate,
        outcome.completed,
        outcome.succeeded,
        outcome.reconciles,
        outcome.requests,
        outcome.virtual_ms / 1000,
        wall.as_secs_f64(),
        peak_rss_kib().map_or("?".to_string(), |k| (k / 1024).to_string()),
    );
    if std::env::args().any(|a| a == "--once") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

// The fleet: `n` services, each with two versions, load and its own experiment, all
// reconciled through the same driver on one virtual clock.

/// The namespace of the fleet.
const NAMESPACE: &str = "fleet";

/// What a fleet run looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FleetSpec {
    /// Experiments (and services).
    experiments: usize,
    /// `maxIterations` of each.
    iterations: u32,
    /// `interval` of each, in seconds.
    interval_secs: u32,
    /// Requests per second to each service.
    rate: f64,
    /// Traffic seed.
    seed: u64,
}

/// How a fleet run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct FleetOutcome {
    /// Experiments that completed.
    completed: usize,
    /// Of which succeeded.
    succeeded: usize,
    /// Reconciles run.
    reconciles: u64,
    /// Requests simulated.
    requests: u64,
    /// Virtual time at the end.
    virtual_ms: i64,
}

fn template(spec: &FleetSpec) -> Result<Experiment, String> {
    let i = 0;
    let text = format!(
        r#"apiVersion: iter8.tools/v1alpha1
kind: Experiment
metadata:
  name: exp-{i}
  namespace: {NAMESPACE}
spec:
  targetService:
    name: svc-{i}
    baseline: svc-{i}-v1
    candidate: svc-{i}-v2
  trafficControl:
    interval: {}s
    maxIterations: {}
    trafficStepSize: 10
    maxTrafficPercentage: 90
  analysis:
    successCriteria:
      - metricName: iter8_latency
        toleranceType: threshold
        tolerance: 200
        sampleSize: 5
      - metricName: iter8_error_rate
        toleranceType: delta
        tolerance: 0.02
        sampleSize: 10
        stopOnFailure: true
"#,
        spec.interval_secs, spec.iterations
    );
    let mut docs = iter8_core::manifest::parse_experiments(&text).map_err(|e| e.to_string())?;
    match docs.pop() {
        Some(Ok(d)) => Ok(d.experiment),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no experiment".into()),
    }
}

fn labels(app: &str, version: &str) -> Labels {
    [("app", app), ("version", version)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds the fleet: services, versions (every fourth candidate is slow), load and experiments.
fn build(spec: &FleetSpec) -> Result<(Sim, Vec<ExperimentId>), String> {
    let mut sim = Sim::with_options(spec.seed, false);
    let mut profile = Profile::default();
    let good = VersionProfile {
        latency: Latency::Lognormal {
            median_ms: 40.0,
            sigma: 0.3,
        },
        error_rate: 0.0,
        metrics: Default::default(),
    };
    let slow = VersionProfile {
        latency: Latency::Fixed {
            ms: 400.0,
            jitter_ms: 50.0,
        },
        ..good.clone()
    };
    for i in 0..spec.experiments {
        let app = format!("svc-{i}");
        sim.apply(Object::Service(Service {
            namespace: NAMESPACE.into(),
            name: app.clone(),
            selector: [("app".to_string(), app.clone())].into(),
        }));
        for (v, p) in [
            ("v1", &good),
            ("v2", if i % 4 == 3 { &slow } else { &good }),
        ] {
            let name = format!("{app}-{v}");
            profile.versions.insert(name.clone(), p.clone());
            sim.apply(Object::Deployment(Deployment {
                namespace: NAMESPACE.into(),
                name,
                pod_labels: labels(&app, v),
            }));
        }
    }
    sim.add_profiles(&profile);
    for i in 0..spec.experiments {
        sim.add_source(
            Target::Service {
                namespace: NAMESPACE.into(),
                name: format!("svc-{i}"),
            },
            spec.rate,
        );
    }
    sim.run_for(Duration::from_secs(5), &mut |_| {});
    let template = template(spec)?;
    let mut ids = Vec::with_capacity(spec.experiments);
    for i in 0..spec.experiments {
        let mut exp = template.clone();
        exp.metadata.name = Some(format!("exp-{i}"));
        let ts = &mut exp.spec.target_service;
        ts.name = Some(format!("svc-{i}"));
        ts.baseline = Some(format!("svc-{i}-v1"));
        ts.candidate = Some(format!("svc-{i}-v2"));
        ids.push(sim.apply_experiment(exp));
    }
    Ok((sim, ids))
}

/// Runs the fleet until every experiment completes (or a generous limit passes).
fn run(sim: &mut Sim, ids: &[ExperimentId], spec: &FleetSpec) -> FleetOutcome {
    let limit = sim.now().after(Duration::from_secs(
        u64::from(spec.interval_secs) * (u64::from(spec.iterations) + 2) + 60,
    ));
    sim.run_until(limit, &mut |_| {});
    let world = sim.world().lock();
    let mut out = FleetOutcome {
        reconciles: sim.reconciles(),
        requests: world.traffic.sources().iter().map(|s| s.sent).sum(),
        virtual_ms: SimTime::millis(sim.now()),
        ..Default::default()
    };
    for &id in ids {
        if let Some(e) = world.store.get(id)
            && e.status.is_completed()
        {
            out.completed += 1;
            if e.status
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("ExperimentSucceeded"))
            {
                out.succeeded += 1;
            }
        }
    }
    out
}

/// The process' peak resident memory (VmHWM) in KiB, where `/proc` has it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
