//! `iter8 simulate` at library level: timelines, verdicts, input errors, the plot.

use iter8_core::{Experiment, MetricsConfig, TrafficSplit};
use iter8_sim::whatif::{self, WhatIfError};
use iter8_sim::{Profile, plot};

fn experiment(file: &str) -> Experiment {
    let path = format!("{}/../examples/bookinfo/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    iter8_core::manifest::parse_experiments(&text).unwrap()[0]
        .clone()
        .unwrap()
        .experiment
}

fn profile(files: &[&str]) -> Profile {
    let mut p = Profile::default();
    for f in files {
        let path = format!("{}/../examples/profiles/{f}", env!("CARGO_MANIFEST_DIR"));
        p.merge(Profile::from_yaml(&std::fs::read_to_string(&path).unwrap(), f).unwrap());
    }
    p
}

#[test]
fn slow_candidate_fails_with_a_timeline_per_iteration() {
    let exp = experiment("canary_reviews-v3_to_reviews-v4.yaml");
    let p = profile(&["reviews-v3.yaml", "reviews-v4.yaml"]);
    let r = whatif::run(&exp, &p, &MetricsConfig::stock_telemetry_v2(), 1).unwrap();
    assert!(r.completed && !r.succeeded());
    // Iterations 1..=6 then the completion.
    assert_eq!(r.timeline.len(), 7, "{}", r.render());
    assert_eq!(r.timeline[0].split, TrafficSplit::with_candidate(20));
    let last = r.timeline.last().unwrap();
    assert_eq!(last.split, TrafficSplit::ALL_BASELINE);
    let c = &last.criteria[0];
    let latency = c.candidate.unwrap().value.unwrap();
    assert!((4900.0..=5100.0).contains(&latency), "{latency}");
    let text = r.render();
    assert!(text.contains("not met"), "{text}");
    assert!(text.contains("<= 200"), "{text}");
    assert!(
        text.contains("ExperimentFailed: Not All Success Criteria Met after 3:00"),
        "{text}"
    );
}

#[test]
fn error_rate_delta_aborts_early() {
    let exp = experiment("canary_reviews-v3_to_reviews-v5.yaml");
    let p = profile(&["reviews-v3.yaml", "reviews-v5.yaml"]);
    let r = whatif::run(&exp, &p, &MetricsConfig::stock_telemetry_v2(), 7).unwrap();
    assert_eq!(
        r.experiment.status.message.as_deref(),
        Some("ExperimentFailed: Aborted")
    );
    let text = r.render();
    assert!(text.contains("<= 1.02 x baseline"), "{text}");
    assert!(text.contains("not met: abort"), "{text}");
    assert!(r.timeline.len() <= 3, "{text}");
}

#[test]
fn same_seed_same_report() {
    let exp = experiment("canary_reviews-v2_to_reviews-v3.yaml");
    let p = profile(&["reviews-v2.yaml", "reviews-v3.yaml"]);
    let m = MetricsConfig::stock_telemetry_v2();
    let a = whatif::run(&exp, &p, &m, 5).unwrap();
    let b = whatif::run(&exp, &p, &m, 5).unwrap();
    assert_eq!(a.render(), b.render());
    assert_eq!(a.plot, b.plot);
    let c = whatif::run(&exp, &p, &m, 6).unwrap();
    assert_ne!(a.render(), c.render(), "another seed draws other latencies");
    assert_eq!(a.experiment.status.message, c.experiment.status.message);
}

#[test]
fn custom_metric_from_the_profile_and_p90_from_the_histogram() {
    let mut exp = experiment("canary_reviews-v3_to_reviews-v5.yaml");
    // Judge on a business metric the profile gives, and on p90 latency.
    let text = r#"
query_templates: |-
  iter8_sample_size: "sum(increase(istio_requests_total{reporter='source'}[$interval])) by ($entity_labels)"
  conversion_rate: "sum(rate(shop_orders_total[$interval])) by ($entity_labels)"
  iter8_90_perc_latency: "histogram_quantile(0.90, sum(increase(istio_request_duration_milliseconds_bucket{reporter='source'}[$interval])) by ($entity_labels, le))"
metrics: |-
  - name: conversion_rate
    sample_size_query_template: iter8_sample_size
  - name: iter8_90_perc_latency
    sample_size_query_template: iter8_sample_size
"#;
    let doc: std::collections::BTreeMap<String, String> = serde_saphyr::from_str(text).unwrap();
    let m = MetricsConfig::from_data(&doc).unwrap();
    let criteria = &mut exp.spec.analysis.success_criteria;
    criteria[0].metric_name = Some("iter8_90_perc_latency".into());
    criteria[1].metric_name = Some("conversion_rate".into());
    criteria[1].tolerance_type = Some(iter8_core::ToleranceType::Threshold);
    criteria[1].tolerance = Some(0.5);
    criteria[1].stop_on_failure = Some(false);
    let p = profile(&["reviews-v3-to-v5.yaml"]);
    let r = whatif::run(&exp, &p, &m, 1).unwrap();
    let last = r.timeline.last().unwrap();
    let p90 = last.criteria[0].candidate.unwrap().value.unwrap();
    assert!((25.0..100.0).contains(&p90), "{p90}");
    assert_eq!(last.criteria[1].candidate.unwrap().value, Some(0.0));
    assert_eq!(last.criteria[1].baseline.unwrap().value, Some(0.12));
}

#[test]
fn bad_inputs_are_named() {
    let exp = experiment("canary_reviews-v3_to_reviews-v4.yaml");
    let m = MetricsConfig::stock_telemetry_v2();
    let err = whatif::run(&exp, &profile(&["reviews-v3.yaml"]), &m, 1).unwrap_err();
    assert_eq!(
        err,
        WhatIfError::MissingVersion {
            version: "reviews-v4".into(),
            role: "candidate",
            available: "reviews-v3".into()
        }
    );
    assert!(err.to_string().contains("no version `reviews-v4`"));

    let mut bad = exp.clone();
    bad.spec.analysis.success_criteria[0].metric_name = Some("iter8_nope".into());
    let p = profile(&["reviews-v3.yaml", "reviews-v4.yaml"]);
    let err = whatif::run(&bad, &p, &m, 1).unwrap_err().to_string();
    assert!(err.contains("iter8_nope"), "{err}");

    let mut bad = exp.clone();
    bad.spec.traffic_control.max_iterations = Some(0);
    let err = whatif::run(&bad, &p, &m, 1).unwrap_err().to_string();
    assert!(err.contains("maxIterations"), "{err}");

    let odd = MetricsConfig::from_parts(
        "iter8_sample_size: \"sum(increase(istio_requests_total[$interval])) by ($entity_labels)\"\niter8_latency: \"avg(some_gauge)\"",
        "- name: iter8_latency\n  sample_size_query_template: iter8_sample_size",
    )
    .unwrap();
    let err = whatif::run(&exp, &p, &odd, 1).unwrap_err().to_string();
    assert!(
        err.contains("cannot compute metric `iter8_latency`"),
        "{err}"
    );

    for (text, needle) in [
        (
            "versions:\n  a: {latency: {fixed: {ms: -1}}}\n",
            "versions.a.latency.fixed.ms",
        ),
        (
            "versions:\n  a: {latency: {gaussian: {mean: 3}}}\n",
            "gaussian",
        ),
        ("rate: fast\n", "rate"),
        (
            "versions:\n  a: {latency: {lognormal: {median_ms: 40, sigma: 0.3}}, error_rate: 2}\n",
            "error_rate",
        ),
    ] {
        let err = Profile::from_yaml(text, "p.yaml").unwrap_err().to_string();
        assert!(err.starts_with("p.yaml: "), "{err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn the_plot_is_an_svg_with_both_versions() {
    let exp = experiment("canary_reviews-v2_to_reviews-v3.yaml");
    let p = profile(&["reviews-v2.yaml", "reviews-v3.yaml"]);
    let r = whatif::run(&exp, &p, &MetricsConfig::stock_telemetry_v2(), 1).unwrap();
    let svg = plot::render_svg(&r.plot).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    for text in [
        "reviews-v2",
        "reviews-v3",
        "Request rate",
        "Mean latency",
        "Traffic split",
    ] {
        assert!(svg.contains(text), "{text}");
    }
    // The candidate's rate rises with its share: 10 req/s, 80% at the end of the ramp.
    let c = &r.plot.versions[1];
    let peak = c.rate.iter().map(|p| p.1).fold(0.0, f64::max);
    assert!((7.0..=10.0).contains(&peak), "{peak}");
}
