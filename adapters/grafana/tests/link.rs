//! `status.grafanaURL` for the tutorial's experiments, and names that need encoding.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::*;
use iter8_core::ports::DashboardLink;
use iter8_grafana::GrafanaLink;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 3, 5, 10, 0, 0).unwrap()
}

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 3, 5, 10, 4, 30).unwrap()
}

fn in_namespace(file: &str, ns: &str) -> iter8_core::Experiment {
    let mut e = experiment(file);
    e.metadata.namespace = Some(ns.to_string());
    e
}

#[test]
fn tutorial_experiments() {
    let link = GrafanaLink::new();
    let expected = [
        (
            "canary_reviews-v2_to_reviews-v3.yaml",
            "reviews",
            "reviews-v2",
            "reviews-v3",
        ),
        (
            "canary_reviews-v3_to_reviews-v4.yaml",
            "reviews",
            "reviews-v3",
            "reviews-v4",
        ),
        (
            "canary_reviews-v3_to_reviews-v5.yaml",
            "reviews",
            "reviews-v3",
            "reviews-v5",
        ),
        (
            "canary_reviews-v3_to_reviews-v6.yaml",
            "reviews",
            "reviews-v3",
            "reviews-v6",
        ),
        (
            "canary_productpage-v1_to_productpage-v2.yaml",
            "productpage",
            "productpage-v1",
            "productpage-v2",
        ),
        (
            "service-kind_canary_productpage-v1_to_productpage-v2.yaml",
            "",
            "productpage-v1",
            "productpage-v2",
        ),
    ];
    for (file, svc, b, c) in expected {
        let exp = in_namespace(file, "bookinfo-iter8");
        assert_eq!(
            link.url(&exp, start(), None).as_deref(),
            Some(
                format!(
                    "http://localhost:3000/d/eXPEaNnZz/iter8-application-metrics?var-namespace=bookinfo-iter8\
                     &var-service={svc}&var-baseline={b}&var-candidate={c}&from=1583402400000&to=now"
                )
                .as_str()
            ),
            "{file}"
        );
        let done = link.url(&exp, start(), Some(end())).unwrap();
        assert!(
            done.ends_with("&from=1583402400000&to=1583402670000"),
            "{done}"
        );
    }
}

#[test]
fn namespace_is_the_target_services_then_the_experiments_then_default() {
    let link = GrafanaLink::new();
    let mut exp = experiment("canary_reviews-v2_to_reviews-v3.yaml");
    let ns = |e: &iter8_core::Experiment| {
        let u = link.url(e, start(), None).unwrap();
        u.split("var-namespace=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(ns(&exp), "default");
    exp.metadata.namespace = Some("bookinfo-iter8".into());
    assert_eq!(ns(&exp), "bookinfo-iter8");
    exp.spec.target_service.namespace = Some("bookinfo".into());
    assert_eq!(ns(&exp), "bookinfo");
}

#[test]
fn endpoint_with_a_path_and_trailing_slash() {
    let mut exp = in_namespace("canary_reviews-v3_to_reviews-v6.yaml", "bookinfo-iter8");
    exp.spec.analysis.grafana_endpoint =
        Some("https://grafana.example.com/monitoring/grafana/".into());
    let url = GrafanaLink::new().url(&exp, start(), Some(end())).unwrap();
    assert_eq!(
        url,
        "https://grafana.example.com/monitoring/grafana/d/eXPEaNnZz/iter8-application-metrics?\
         var-namespace=bookinfo-iter8&var-service=reviews&var-baseline=reviews-v3&var-candidate=reviews-v6\
         &from=1583402400000&to=1583402670000"
    );
}

#[test]
fn values_are_percent_encoded() {
    let mut exp = experiment("canary_reviews-v2_to_reviews-v3.yaml");
    exp.metadata.namespace = Some("team a&b".into());
    exp.spec.target_service.name = Some("reviews?x=1#frag".into());
    exp.spec.target_service.baseline = Some("v1/π+%".into());
    exp.spec.target_service.candidate = Some("ok-name_1.2~".into());
    let url = GrafanaLink::new().url(&exp, start(), None).unwrap();
    assert_eq!(
        url,
        "http://localhost:3000/d/eXPEaNnZz/iter8-application-metrics?var-namespace=team%20a%26b\
         &var-service=reviews%3Fx%3D1%23frag&var-baseline=v1%2F%CF%80%2B%25\
         &var-candidate=ok-name_1.2~&from=1583402400000&to=now"
    );
}

#[test]
fn blank_endpoint_gives_no_url() {
    let mut exp = experiment("canary_reviews-v2_to_reviews-v3.yaml");
    exp.spec.analysis.grafana_endpoint = Some(" / ".into());
    assert_eq!(GrafanaLink::new().url(&exp, start(), None), None);
}
