//! Every dashboard we generate passes Grafana's current dashboard JSON schema.

mod common;

use common::*;
use iter8_core::MetricsConfig;
use iter8_grafana::{DashboardInput, Telemetry, build_dashboard};

#[test]
fn the_schema_rejects_iter8_v0_2_dashboards() {
    // The check has teeth: Grafana 6's dashboards (as iter8 v0.2.1 shipped them) fail it.
    let old: serde_json::Value =
        serde_json::from_str(&read("istio-telemetry-v2.grafana6.json")).expect("json");
    assert!(!schema_errors(&old).is_empty());
}

#[test]
fn generic_dashboards_validate() {
    for telemetry in [Telemetry::V1, Telemetry::V2] {
        for metrics in [telemetry.stock_metrics(), telemetry.extended_metrics()] {
            let d = build_dashboard(&DashboardInput {
                telemetry,
                metrics: &metrics,
                experiment: None,
            })
            .expect("dashboard");
            let errors = schema_errors(&d);
            assert!(errors.is_empty(), "{telemetry}: {errors:#?}");
        }
    }
}

#[test]
fn every_tutorial_experiment_dashboard_validates() {
    let mut checked = 0;
    for file in TUTORIAL_EXPERIMENTS {
        let exp = experiment(file);
        for (telemetry, v2) in [(Telemetry::V1, false), (Telemetry::V2, true)] {
            let metrics = extended_metrics(v2);
            let d = build_dashboard(&DashboardInput {
                telemetry,
                metrics: &metrics,
                experiment: Some(&exp),
            })
            .unwrap_or_else(|e| panic!("{file} {telemetry}: {e}"));
            let errors = schema_errors(&d);
            assert!(errors.is_empty(), "{file} {telemetry}: {errors:#?}");
            checked += 1;
            // Without the criteria (the generic dashboard with this experiment's names).
            let mut bare = exp.clone();
            bare.spec.analysis.success_criteria.clear();
            let d = build_dashboard(&DashboardInput {
                telemetry,
                metrics: &MetricsConfig::default(),
                experiment: Some(&bare),
            })
            .expect("dashboard without criteria");
            assert!(schema_errors(&d).is_empty(), "{file} {telemetry} bare");
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn the_check_catches_broken_panels() {
    let exp = experiment("canary_reviews-v3_to_reviews-v6.yaml");
    let good = build_dashboard(&DashboardInput {
        telemetry: Telemetry::V2,
        metrics: &extended_metrics(true),
        experiment: Some(&exp),
    })
    .expect("dashboard");
    let mut wide = good.clone();
    wide["panels"][1]["gridPos"]["w"] = 25.into();
    assert!(!schema_errors(&wide).is_empty());
    let mut unknown = good.clone();
    unknown["panels"][1]["yaxes"] = serde_json::json!([]);
    assert!(!schema_errors(&unknown).is_empty());
    let mut bad_step = good;
    bad_step["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] =
        "x".into();
    assert!(!schema_errors(&bad_step).is_empty());
}
