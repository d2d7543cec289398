//! Inputs shared by the benchmarks: the tutorial's part 3 experiment (two criteria) mid-run;
//! [`chaos`], what the two chaos runs share.

pub mod chaos;

use chrono::{DateTime, TimeZone, Utc};
use iter8_core::analytics::{AnalysisRequest, AnalysisState};
use iter8_core::manifest::parse_experiments;
use iter8_core::measurement::Window;
use iter8_core::metrics_config::{EXTENDED_TELEMETRY_V2, MetricsConfig};
use iter8_core::validation::plan;
use iter8_core::{Experiment, Measurement, MetricReadings, VersionReading};

/// The tutorial's part 3 experiment: a latency threshold and an error-rate delta.
pub fn experiment() -> Experiment {
    let text = include_str!("../examples/bookinfo/canary_reviews-v3_to_reviews-v5.yaml");
    parse_experiments(text).expect("valid YAML")[0]
        .clone()
        .expect("an experiment")
        .experiment
}

/// The tutorial's extended metrics configuration.
pub fn metrics() -> MetricsConfig {
    MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).expect("stock config parses")
}

/// A fixed decision time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0)
        .single()
        .expect("valid time")
}

/// An analysis request in the middle of a run (last state at 40 %).
pub fn request() -> AnalysisRequest {
    let p = plan(&experiment(), &metrics()).expect("valid experiment");
    let last = AnalysisState::from(serde_json::json!({
        "baseline": {"traffic_percentage": 60.0, "success_criterion_information": [[90.0, 5.0], [90.0, 0.0]]},
        "candidate": {"traffic_percentage": 40.0, "success_criterion_information": [[30.0, 6.0], [30.0, 0.0]]},
    }));
    AnalysisRequest::new(
        &p,
        Window {
            start: t0(),
            end: t0() + chrono::Duration::seconds(90),
        },
        Some(last),
    )
}

/// Readings for both criteria, passing.
pub fn readings() -> Vec<MetricReadings> {
    let r = |v: f64, n: f64| VersionReading {
        value: Measurement::Value(v),
        sample_size: Measurement::Value(n),
    };
    vec![
        MetricReadings {
            metric: "iter8_latency".into(),
            baseline: r(5.1, 120.0),
            candidate: r(6.2, 40.0),
        },
        MetricReadings {
            metric: "iter8_error_rate".into(),
            baseline: r(0.0, 120.0),
            candidate: r(0.0, 40.0),
        },
    ]
}
