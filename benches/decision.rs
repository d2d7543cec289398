//! One decision with two criteria: the check_and_increment analysis alone, the engine's part
//! of an iteration (reconcile asking for the analysis, resume deciding: status, conditions,
//! events), and a whole iteration as the driver runs it (the same with the analysis between).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iter8_benches::{experiment, metrics, readings, request, t0};
use iter8_core::analytics;
use iter8_core::engine::{self, Context, Step};
use iter8_core::observation::{Observations, Targets};
use iter8_rand::ChaCha;
use std::hint::black_box;

fn analysis(c: &mut Criterion) {
    let req = request();
    let readings = readings();
    let mut g = c.benchmark_group("decision");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_and_increment_two_criteria", |b| {
        b.iter(|| analytics::analyze(black_box(&req), black_box(&readings), &ChaCha))
    });

    // An experiment mid-run: its first iteration decided.
    let mut exp = experiment();
    exp.metadata.finalizers.push(iter8_core::FINALIZER.into());
    let m = metrics();
    let obs = Observations {
        targets: Targets::all_present(),
        ..Default::default()
    };
    let ctx = Context::new(&m, t0());
    if let Step::Analyze(pending) = engine::reconcile(&exp, &obs, &ctx) {
        let outcome = analytics::analyze(pending.request(), &readings, &ChaCha);
        exp.status = pending.resume(outcome).status;
    }
    let later = Context::new(&m, t0() + chrono::Duration::seconds(30));
    let Step::Analyze(pending) = engine::reconcile(&exp, &obs, &later) else {
        panic!("an iteration is due")
    };
    let outcome = analytics::analyze(pending.request(), &readings, &ChaCha);

    // The engine's part of an iteration: reconcile (asks for the analysis) and resume with
    // the outcome (decides).
    g.bench_function("engine_reconcile_two_criteria", |b| {
        b.iter(|| {
            let Step::Analyze(pending) = engine::reconcile(black_box(&exp), &obs, &later) else {
                panic!("an iteration is due")
            };
            pending.resume(black_box(outcome.clone()))
        })
    });

    // A whole iteration as the driver runs it: reconcile (asks for the analysis), analysis,
    // resume with the outcome (decides).
    g.bench_function("engine_iteration_two_criteria", |b| {
        b.iter(|| {
            let Step::Analyze(pending) = engine::reconcile(black_box(&exp), &obs, &later) else {
                panic!("an iteration is due")
            };
            let outcome = analytics::analyze(pending.request(), black_box(&readings), &ChaCha);
            pending.resume(outcome)
        })
    });
    g.finish();
}

criterion_group!(benches, analysis);
criterion_main!(benches);
