//! The tutorial replay at library level: each part's outcome and splits, the v5 abort's
//! timing, the tables against the seed's, and reproducibility.

use iter8_core::{Phase, TrafficSplit};
use iter8_sim::tutorial::{self, Options, Outcome, Telemetry, transcript_tables as tables};

const SEED_MD: &str = include_str!("../../tests/data/iter8-canary-tutorial.md");

fn outcome<'a>(outcomes: &'a [Outcome], name: &str) -> &'a Outcome {
    outcomes
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no outcome for {name}"))
}

#[test]
fn tables_match_the_seed_row_for_row() {
    let expected = tables(SEED_MD);
    assert_eq!(expected.len(), 14, "the seed shows 14 experiment tables");
    for telemetry in [Telemetry::V1, Telemetry::V2] {
        let t = tutorial::run(&Options { seed: 1, telemetry }).unwrap();
        let got = tables(&t.text);
        assert_eq!(got.len(), expected.len(), "{telemetry:?}\n{}", t.text);
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "{telemetry:?}: table {} differs", i + 1);
        }
        assert_eq!(t.tables.len(), 14);
    }
}

#[test]
fn each_part_ends_as_the_tutorial_says() {
    let t = tutorial::run(&Options::default()).unwrap();
    let o = &t.outcomes;
    assert_eq!(o.len(), 5);

    let v3 = outcome(o, "reviews-v3-rollout");
    assert_eq!(v3.phase, Some(Phase::Completed));
    assert_eq!(
        v3.message,
        "ExperimentSucceeded: All Success Criteria Were Met"
    );
    assert_eq!(v3.split, TrafficSplit::ALL_CANDIDATE);
    assert_eq!(v3.iterations, 8);
    assert_eq!(v3.duration.as_secs(), 8 * 30);
    let candidate: Vec<u32> = v3.splits.iter().map(|s| s.candidate).collect();
    assert_eq!(candidate, [20, 40, 60, 80, 100]);

    let v4 = outcome(o, "reviews-v4-rollout");
    assert_eq!(v4.message, "ExperimentFailed: Not All Success Criteria Met");
    assert_eq!(v4.split, TrafficSplit::ALL_BASELINE);
    // Traffic never moved past the first step: the latency threshold failed every time.
    let candidate: Vec<u32> = v4.splits.iter().map(|s| s.candidate).collect();
    assert_eq!(candidate, [20, 0]);
    assert_eq!(v4.duration.as_secs(), 6 * 30);

    let v5 = outcome(o, "reviews-v5-rollout");
    assert_eq!(v5.message, "ExperimentFailed: Aborted");
    assert_eq!(v5.split, TrafficSplit::ALL_BASELINE);
    assert!(
        v5.iterations < v5.max_iterations,
        "aborted at iteration {} of {}",
        v5.iterations,
        v5.max_iterations
    );
    assert!(v5.duration.as_secs() < u64::from(v5.max_iterations - 1) * 30);

    let v6 = outcome(o, "reviews-v6-rollout");
    assert_eq!(
        v6.message,
        "ExperimentSucceeded: All Success Criteria Were Met"
    );
    assert_eq!(v6.split, TrafficSplit::ALL_CANDIDATE);

    let pp = outcome(o, "productpage-v2-rollout");
    assert_eq!(
        pp.message,
        "ExperimentSucceeded: All Success Criteria Were Met"
    );
    assert_eq!(pp.split, TrafficSplit::ALL_CANDIDATE);
    let candidate: Vec<u32> = pp.splits.iter().map(|s| s.candidate).collect();
    assert_eq!(candidate, [20, 40, 60, 80, 100]);
}

#[test]
fn same_seed_same_output_other_seed_same_outcomes() {
    let a = tutorial::run(&Options::default()).unwrap();
    let b = tutorial::run(&Options::default()).unwrap();
    assert_eq!(a, b);
    for seed in [2, 42, 1234] {
        let c = tutorial::run(&Options {
            seed,
            ..Options::default()
        })
        .unwrap();
        let summary = |t: &tutorial::Transcript| {
            t.outcomes
                .iter()
                .map(|o| (o.name.clone(), o.message.clone(), o.split, o.iterations))
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&a), summary(&c), "seed {seed}");
        assert_eq!(a.tables, c.tables, "seed {seed}");
    }
}
