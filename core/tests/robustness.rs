//! Bad input never panics: arbitrary bytes and structurally valid YAML with random values go
//! through parsing and validation to either an experiment or errors.

mod support;

use iter8_core::MetricsConfig;
use iter8_core::manifest::parse_experiments;
use iter8_core::validation::{MetricCheck, plan, validate};
use proptest::prelude::*;

fn check(text: &str) {
    let metrics = support::metrics();
    if let Ok(docs) = parse_experiments(text) {
        for doc in docs.into_iter().flatten() {
            let problems = validate(&doc.experiment, &metrics, MetricCheck::Strict);
            let planned = plan(&doc.experiment, &metrics);
            assert_eq!(
                problems
                    .iter()
                    .any(|p| p.severity == iter8_core::validation::Severity::Error),
                planned.is_err()
            );
        }
    }
    let _ = MetricsConfig::from_configmap_yaml(text);
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e309".to_string()),
        Just(".nan".to_string()),
        Just("\"\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[1, 2]".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[a-zA-Z0-9 _./-]{0,12}".prop_map(|s| format!("\"{s}\"")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_values_in_a_real_shape_never_panic(values in proptest::collection::vec(scalar(), 20)) {
        let v = |i: usize| values[i].clone();
        let yaml = format!(
            "apiVersion: {}\nkind: Experiment\nmetadata:\n  name: {}\nspec:\n  targetService:\n    kind: {}\n    apiVersion: {}\n    name: {}\n    baseline: {}\n    candidate: {}\n    port: {}\n    hosts:\n    - name: {}\n      gateway: {}\n  trafficControl:\n    strategy: {}\n    interval: {}\n    maxIterations: {}\n    trafficStepSize: {}\n    maxTrafficPercentage: {}\n    onSuccess: {}\n  analysis:\n    successCriteria:\n    - metricName: {}\n      toleranceType: {}\n      tolerance: {}\n      sampleSize: {}\naction: pause\n",
            v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8), v(9), v(10), v(11), v(12), v(13), v(14), v(15), v(16), v(17), v(18), v(19)
        );
        check(&yaml);
    }

    #[test]
    fn truncated_tutorial_manifests_never_panic(cut in 0usize..600) {
        let text = include_str!("../../examples/bookinfo/canary_reviews-v3_to_reviews-v5.yaml");
        let cut = cut.min(text.len());
        if text.is_char_boundary(cut) {
            check(&text[..cut]);
        }
    }
}
