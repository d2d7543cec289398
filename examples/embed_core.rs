//! Embedding `iter8-core` as a library: drive one experiment through the pure engine with your
//! own observations and measurements, in virtual time.
//!
//! Run with `cargo run --example embed_core`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use iter8_core::action::{Action, RoutingAction};
use iter8_core::analytics;
use iter8_core::engine::{self, Context, Step};
use iter8_core::manifest::parse_experiments;
use iter8_core::metrics_config::MetricsConfig;
use iter8_core::observation::{Observations, RoutingObservation, Targets};
use iter8_core::{Measurement, MetricReadings, TrafficSplit, VersionReading, table};
use iter8_rand::ChaCha;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = include_str!("bookinfo/canary_reviews-v2_to_reviews-v3.yaml");
    let mut exp = parse_experiments(text)?
        .into_iter()
        .next()
        .ok_or("no experiment")??
        .experiment;
    let metrics = MetricsConfig::stock_telemetry_v2();
    let mut now = Utc
        .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .ok_or("time")?;
    let mut routed = TrafficSplit::ALL_BASELINE;

    while !exp.status.is_completed() {
        let ctx = Context::new(&metrics, now);
        let obs = Observations {
            targets: Targets::all_present(),
            routing: RoutingObservation {
                split: Some(routed),
                held_by: None,
                ..Default::default()
            },
        };
        // The engine decides at once, or asks for an analysis and decides when it gets the
        // outcome back: `resume` is the only way on from `Analyze`.
        let decision = match engine::reconcile(&exp, &obs, &ctx) {
            Step::Decided(d) => d,
            Step::Analyze(pending) => {
                let request = pending.request();
                // Your metrics backend goes here: one reading per criterion, both versions.
                let seconds = request.window.interval_secs() as f64;
                let reading = |latency: f64, requests: f64| VersionReading {
                    value: Measurement::Value(latency),
                    sample_size: Measurement::Value(requests),
                };
                let readings: Vec<MetricReadings> = request
                    .criteria
                    .iter()
                    .map(|c| MetricReadings {
                        metric: c.metric.name.clone(),
                        baseline: reading(12.0, seconds * 8.0),
                        candidate: reading(9.5, seconds * 2.0),
                    })
                    .collect();
                let outcome = analytics::analyze(request, &readings, &ChaCha);
                pending.resume(outcome)
            }
        };
        // Your routing goes here.
        for action in &decision.actions {
            match action {
                Action::Route(RoutingAction::Initialize) => routed = TrafficSplit::ALL_BASELINE,
                Action::Route(RoutingAction::SetSplit(s)) => routed = *s,
                Action::Route(RoutingAction::Finalize { split, .. }) => routed = *split,
                Action::AddFinalizer => exp.metadata.finalizers.push(iter8_core::FINALIZER.into()),
                _ => {}
            }
        }
        exp.status = decision.status;
        print!(
            "{}",
            table::render([&exp])
                .lines()
                .nth(1)
                .map_or(String::new(), |l| format!("{now}  {l}\n"))
        );
        now +=
            chrono::Duration::from_std(decision.requeue_after.unwrap_or(Duration::from_secs(30)))?;
    }
    Ok(())
}
