//! 10,000 concurrent simulated experiments, 10 iterations each, through the core's driver:
//! wall time (criterion) and peak memory (VmHWM).
//!
//! `cargo bench -p iter8-sim --bench many_experiments` (add `-- --once` for one measured run;
//! `ITER8_FLEET_EXPERIMENTS`, `ITER8_FLEET_INTERVAL` and `ITER8_FLEET_RATE` change the fleet).

use std::time::Instant;

use criterion::{Criterion, criterion_group};
use iter8_sim::fleet::{self, FleetSpec};

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

fn once() -> fleet::FleetOutcome {
    let spec = spec();
    let (mut sim, ids) = fleet::build(&spec).unwrap_or_else(|e| panic!("building the fleet: {e}"));
    fleet::run(&mut sim, &ids, &spec)
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
        fleet::peak_rss_kib().map_or("?".to_string(), |k| (k / 1024).to_string()),
    );
    if std::env::args().any(|a| a == "--once") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
