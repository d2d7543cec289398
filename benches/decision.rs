//! One decision with two criteria: the check_and_increment analysis alone, the engine's
//! reconcile that applies an analysis outcome (status, conditions, events), and a whole
//! iteration as the driver runs it (reconcile asking for the analysis, the analysis, reconcile
//! deciding).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iter8_benches::{experiment, metrics, readings, request, t0};
use iter8_core::analytics;
use iter8_core::engine::{self, Context, Step};
use iter8_core::observation::{Observations, Targets};
use std::hint::black_box;

fn analysis(c: &mut Criterion) {
    let req = request();
    let readings = readings();
    let mut g = c.benchmark_group("decision");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_and_increment_two_criteria", |b| {
        b.iter(|| analytics::analyze(black_box(&req), black_box(&readings)))
    });

    // A whole reconcile of an experiment mid-run, with the analysis outcome observed.
    let mut exp = experiment();
    exp.metadata.finalizers.push(iter8_core::FINALIZER.into());
    let m = metrics();
    let obs = Observations {
        targets: Targets::all_present(),
        ..Default::default()
    };
    let ctx = Context::new(&m, t0());
    if let Step::Analyze(r) = engine::reconcile(&exp, &obs, &ctx) {
        let o = Observations {
            analysis: Some(analytics::analyze(&r, &readings)),
            ..obs.clone()
        };
        if let Step::Decided(d) = engine::reconcile(&exp, &o, &ctx) {
            exp.status = d.status;
        }
    }
    let later = Context::new(&m, t0() + chrono::Duration::seconds(30));
    let outcome = match engine::reconcile(&exp, &obs, &later) {
        Step::Analyze(r) => analytics::analyze(&r, &readings),
        Step::Decided(_) => panic!("an iteration is due"),
    };
    let with_outcome = Observations {
        analysis: Some(outcome),
        ..obs.clone()
    };
    g.bench_function("engine_reconcile_two_criteria", |b| {
        b.iter(|| engine::reconcile(black_box(&exp), black_box(&with_outcome), &later))
    });

    // A whole iteration as the driver runs it: reconcile (asks for the analysis), analysis,
    // reconcile with the outcome (decides).
    g.bench_function("engine_iteration_two_criteria", |b| {
        b.iter(|| {
            let Step::Analyze(r) = engine::reconcile(black_box(&exp), &obs, &later) else {
                panic!("an iteration is due")
            };
            let o = Observations {
                analysis: Some(analytics::analyze(&r, black_box(&readings))),
                ..obs.clone()
            };
            engine::reconcile(&exp, &o, &later)
        })
    });
    g.finish();
}

criterion_group!(benches, analysis);
criterion_main!(benches);
