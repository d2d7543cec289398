//! The Kubernetes side against a scripted API server (tower-test): each test asserts every
//! request's method, path (with `?fieldManager=iter8&force=true` on applies) and body.

mod common;

use std::future::Future;

use common::*;
use http::{Request, Response};
use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::{Experiment, TrafficSplit};
use iter8_core::observation::RoutingObservation;
use iter8_core::ports::{PortError, TrafficRouter};
use iter8_istio::IstioRouter;
use kube::client::Body;
use serde_json::{Value, json};

const PART1: &str = "canary_reviews-v2_to_reviews-v3.yaml";
const SERVICE_KIND: &str = "service-kind_canary_productpage-v1_to_productpage-v2.yaml";
const VS: &str = "virtualservices";
const DR: &str = "destinationrules";
const REVIEWS: &str = "reviews.bookinfo-iter8.svc.cluster.local";

/// Runs `f` against a router whose API server answers `script`, then checks the script ran out.
async fn with_api<F, Fut, T>(script: Vec<Exchange>, f: F) -> T
where
    F: FnOnce(IstioRouter) -> Fut,
    Fut: Future<Output = T>,
{
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(serve(handle, script));
    let out = f(IstioRouter::new(kube::Client::new(service, "default"))).await;
    if let Err(e) = server.await {
        std::panic::resume_unwind(e.into_panic());
    }
    out
}

/// What the router observes for `exp` against an API server that answers `script`.
async fn observed(
    script: Vec<Exchange>,
    exp: &Experiment,
) -> Result<RoutingObservation, PortError> {
    let exp = exp.clone();
    with_api(script, |router| async move { router.observe(&exp).await }).await
}

/// What applying `action` for `exp` returns against an API server that answers `script`.
async fn applied(
    script: Vec<Exchange>,
    exp: &Experiment,
    action: RoutingAction,
) -> Result<(), PortError> {
    let exp = exp.clone();
    with_api(
        script,
        |router| async move { router.apply(&exp, &action).await },
    )
    .await
}

/// The requests of a split change for part 1: it reads the host's rules (`vs`, `dr`) and both
/// Deployments, then makes `writes`.
fn split_script(vs: Vec<Value>, dr: Vec<Value>, writes: Vec<Exchange>) -> Vec<Exchange> {
    let reads = vec![
        list(VS, REVIEWS, vs),
        list(DR, REVIEWS, dr),
        get_deployment("reviews-v2"),
        get_deployment("reviews-v3"),
    ];
    reads.into_iter().chain(writes).collect()
}

/// The VirtualService (0) and DestinationRule (1) of an expected-objects file.
fn expected(file: &str) -> (Value, Value) {
    let mut docs = documents(&format!("expected/{file}"));
    let dr = docs.remove(1);
    (docs.remove(0), dr)
}

/// Part 1's rules, as they stand after the experiment `reviews-v3-rollout` completed.
fn part1_stable() -> (Value, Value) {
    expected("part1-final-candidate.yaml")
}

/// Part 2's experiment: reviews-v3 to reviews-v4, on the same host.
fn part2() -> Experiment {
    let mut exp = experiment(PART1);
    exp.metadata.name = Some("reviews-v4-rollout".into());
    exp.spec.target_service.baseline = Some("reviews-v3".into());
    exp.spec.target_service.candidate = Some("reviews-v4".into());
    exp
}

fn with_weights(mut vs: Value, baseline: u32, candidate: u32) -> Value {
    vs["spec"]["http"][0]["route"][0]["weight"] = json!(baseline);
    vs["spec"]["http"][0]["route"][1]["weight"] = json!(candidate);
    vs
}

fn split(baseline: u32, candidate: u32) -> TrafficSplit {
    TrafficSplit {
        baseline,
        candidate,
    }
}

#[tokio::test]
async fn initialize_creates_rules_with_the_candidate_at_zero() {
    let (vs, dr) = expected("part1-candidate-added.yaml");
    let script = vec![
        list(VS, REVIEWS, vec![]),
        list(DR, REVIEWS, vec![]),
        get_deployment("reviews-v3"),
        get_deployment("reviews-v2"),
        apply(DR, &dr),
        apply(VS, &vs),
    ];
    let exp = experiment(PART1);
    let result = applied(script, &exp, RoutingAction::Initialize).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn initialize_without_the_candidate_routes_all_to_the_baseline() {
    let (vs, dr) = expected("part1-initializing.yaml");
    let script = vec![
        list(VS, REVIEWS, vec![]),
        list(DR, REVIEWS, vec![]),
        missing_deployment("reviews-v3"),
        get_deployment("reviews-v2"),
        apply(DR, &dr),
        apply(VS, &vs),
    ];
    let exp = experiment(PART1);
    let result = applied(script, &exp, RoutingAction::Initialize).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn observe_reports_the_split_of_our_rules() {
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let script = vec![list(VS, REVIEWS, vec![vs]), list(DR, REVIEWS, vec![dr])];
    let exp = experiment(PART1);
    let seen = observed(script, &exp).await;
    assert_eq!(
        seen,
        Ok(RoutingObservation {
            split: Some(split(80, 20)),
            held_by: None,
            ..Default::default()
        })
    );
}

const VS_OBJECT: &str =
    "VirtualService bookinfo-iter8/reviews.bookinfo-iter8.svc.cluster.local.iter8-experiment";
const DR_OBJECT: &str =
    "DestinationRule bookinfo-iter8/reviews.bookinfo-iter8.svc.cluster.local.iter8-experiment";

#[tokio::test]
async fn observe_without_rules_reports_no_split_and_both_objects_missing() {
    let script = vec![list(VS, REVIEWS, vec![]), list(DR, REVIEWS, vec![])];
    let exp = experiment(PART1);
    let seen = observed(script, &exp).await;
    assert_eq!(
        seen,
        Ok(RoutingObservation {
            missing: vec![VS_OBJECT.to_string(), DR_OBJECT.to_string()],
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn a_deleted_destination_rule_is_observed_missing_and_put_back() {
    // Without its DestinationRule the VirtualService's subsets answer 503 for the whole host:
    // observe names it, the engine asks for its split again, and the apply creates it first.
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let exp = experiment(PART1);
    let observe = vec![
        list(VS, REVIEWS, vec![vs.clone()]),
        list(DR, REVIEWS, vec![]),
    ];
    let seen = observed(observe, &exp).await;
    assert_eq!(
        seen,
        Ok(RoutingObservation {
            split: Some(split(80, 20)),
            missing: vec![DR_OBJECT.to_string()],
            ..Default::default()
        })
    );
    // The VirtualService, which already says what iter8 would apply, is not applied again.
    let script = split_script(vec![vs.clone()], vec![], vec![apply(DR, &dr)]);
    let result = applied(script, &exp, RoutingAction::SetSplit(split(80, 20))).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn a_deleted_virtual_service_is_observed_missing_and_put_back() {
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let exp = experiment(PART1);
    let observe = vec![
        list(VS, REVIEWS, vec![]),
        list(DR, REVIEWS, vec![dr.clone()]),
    ];
    let seen = observed(observe, &exp).await;
    assert_eq!(
        seen,
        Ok(RoutingObservation {
            missing: vec![VS_OBJECT.to_string()],
            ..Default::default()
        })
    );
    // The DestinationRule, which already says what iter8 would apply, is not applied again.
    let script = split_script(vec![], vec![dr.clone()], vec![apply(VS, &vs)]);
    let result = applied(script, &exp, RoutingAction::SetSplit(split(80, 20))).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn stable_rules_left_for_the_host_are_reused() {
    // Part 2 starts where part 1 ended: its stable rules (no experiment or init label, as
    // v0.2.1 leaves them) are taken over under their name and now name reviews-v4-rollout;
    // not iter8-created for this experiment, so its `cleanup: delete` will leave them.
    let (old_vs, old_dr) = part1_stable();
    for obj in [&old_vs, &old_dr] {
        let labels = obj["metadata"]["labels"].as_object().expect("labels");
        assert!(!labels.contains_key("iter8-tools/experiment"), "{labels:?}");
        assert!(!labels.contains_key("iter8-tools/init"), "{labels:?}");
    }
    let (mut vs, mut dr) = expected("part1-candidate-added.yaml");
    for obj in [&mut vs, &mut dr] {
        let labels = &mut obj["metadata"]["labels"];
        labels["iter8-tools/experiment"] = json!("reviews-v4-rollout.bookinfo-iter8");
        labels
            .as_object_mut()
            .expect("labels")
            .remove("iter8-tools/init");
    }
    dr["spec"]["subsets"][0]["labels"]["version"] = json!("v3");
    dr["spec"]["subsets"][1]["labels"]["version"] = json!("v4");
    let exp = part2();

    let observe = vec![
        list(VS, REVIEWS, vec![old_vs.clone()]),
        list(DR, REVIEWS, vec![old_dr.clone()]),
    ];
    let seen = observed(observe, &exp).await;
    assert_eq!(
        seen,
        Ok(RoutingObservation::default()),
        "free, not ours yet"
    );

    let script = vec![
        list(VS, REVIEWS, vec![old_vs]),
        list(DR, REVIEWS, vec![old_dr]),
        get_deployment("reviews-v4"),
        get_deployment("reviews-v3"),
        apply(DR, &dr),
        apply(VS, &vs),
    ];
    let result = applied(script, &exp, RoutingAction::Initialize).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn stable_rules_written_by_hand_are_reused_but_never_marked_as_iter8s() {
    // A user's own VirtualService `reviews`, labelled for the host and stable: iter8 applies to
    // it under its name and does not add `iter8-tools/init`, so cleanup will never delete it.
    let user_vs = json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": NS,
                     "labels": {"iter8-tools/host": REVIEWS, "iter8-tools/role": "stable"}},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}
    });
    let (mut vs, dr) = expected("part1-split-80-20.yaml");
    vs["metadata"]["name"] = json!("reviews");
    vs["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("iter8-tools/init");
    let script = split_script(vec![user_vs], vec![], vec![apply(DR, &dr), apply(VS, &vs)]);
    let exp = experiment(PART1);
    let result = applied(script, &exp, RoutingAction::SetSplit(split(80, 20))).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn rules_held_by_another_running_experiment_are_refused() {
    // reviews-v3-rollout is still progressing on the host when reviews-v4-rollout asks.
    let (held_vs, held_dr) = expected("part1-split-80-20.yaml");
    let exp = part2();

    let observe = vec![
        list(VS, REVIEWS, vec![held_vs.clone()]),
        get_experiment("reviews-v3-rollout", Some("Progressing")),
        list(DR, REVIEWS, vec![held_dr.clone()]),
    ];
    let seen = observed(observe, &exp).await;
    assert_eq!(
        seen,
        Ok(RoutingObservation {
            split: None,
            held_by: Some("reviews-v3-rollout.bookinfo-iter8".into()),
            ..Default::default()
        })
    );

    let script = vec![
        list(VS, REVIEWS, vec![held_vs]),
        get_experiment("reviews-v3-rollout", Some("Pause")),
        list(DR, REVIEWS, vec![held_dr]),
    ];
    let err = applied(script, &exp, RoutingAction::Initialize)
        .await
        .expect_err("refused");
    assert_eq!(
        err.message,
        "rules held by experiment reviews-v3-rollout.bookinfo-iter8"
    );
}

#[tokio::test]
async fn rules_left_progressing_by_an_experiment_that_is_gone_are_free() {
    let (held_vs, held_dr) = expected("part1-split-80-20.yaml");
    let exp = part2();
    for phase in [None, Some("Completed")] {
        let script = vec![
            list(VS, REVIEWS, vec![held_vs.clone()]),
            get_experiment("reviews-v3-rollout", phase),
            list(DR, REVIEWS, vec![held_dr.clone()]),
        ];
        let seen = observed(script, &exp).await;
        assert_eq!(seen, Ok(RoutingObservation::default()), "{phase:?}");
    }
}

#[tokio::test]
async fn hand_edited_weights_are_observed_and_put_back() {
    // Someone set 50/50 with kubectl mid-experiment: observe reports it, so the engine asks
    // for its split again, and the apply takes the weights back.
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let edited = with_weights(vs.clone(), 50, 50);
    let exp = experiment(PART1);

    let observe = vec![
        list(VS, REVIEWS, vec![edited.clone()]),
        list(DR, REVIEWS, vec![dr.clone()]),
    ];
    let seen = observed(observe, &exp).await;
    assert_eq!(seen.map(|o| o.split), Ok(Some(split(50, 50))));

    // The DestinationRule already is as wanted: only the VirtualService is applied.
    let script = split_script(vec![edited], vec![dr.clone()], vec![apply(VS, &vs)]);
    let result = applied(script, &exp, RoutingAction::SetSplit(split(80, 20))).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn an_apply_that_does_not_take_is_an_error() {
    // E.g. an admission webhook rewrites the weights: apply must not claim success.
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let exp = experiment(PART1);
    let script = split_script(
        vec![with_weights(vs.clone(), 60, 40)],
        vec![dr.clone()],
        vec![apply_answered(VS, &vs, with_weights(vs.clone(), 50, 50))],
    );
    let err = applied(script, &exp, RoutingAction::SetSplit(split(80, 20)))
        .await
        .expect_err("not applied");
    assert!(err.message.contains("serves 50/50"), "{}", err.message);
}

#[tokio::test]
async fn rules_that_already_say_what_iter8_would_apply_are_not_applied_again() {
    // A reconcile that asks again for the split already served (after a restart, say) writes
    // nothing: the script has no apply, and an unexpected request fails the test.
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let exp = experiment(PART1);
    let script = split_script(vec![vs], vec![dr], vec![]);
    let result = applied(script, &exp, RoutingAction::SetSplit(split(80, 20))).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn finalize_routes_to_the_winner_before_dropping_the_loser_subset() {
    let (old_vs, old_dr) = expected("part1-split-80-20.yaml");
    let (vs, dr) = expected("part1-final-candidate.yaml");
    let script = vec![
        list(VS, REVIEWS, vec![old_vs]),
        list(DR, REVIEWS, vec![old_dr]),
        get_deployment("reviews-v3"),
        apply(VS, &vs),
        apply(DR, &dr),
    ];
    let exp = experiment(PART1);
    let action = RoutingAction::Finalize {
        winner: Winner::Candidate,
        split: TrafficSplit::ALL_CANDIDATE,
    };
    let result = applied(script, &exp, action).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn a_missing_deployment_is_named() {
    let script = vec![
        list(VS, REVIEWS, vec![]),
        list(DR, REVIEWS, vec![]),
        missing_deployment("reviews-v2"),
    ];
    let exp = experiment(PART1);
    let err = applied(script, &exp, RoutingAction::SetSplit(split(80, 20)))
        .await
        .expect_err("missing baseline");
    assert_eq!(
        err.message,
        "Deployment bookinfo-iter8/reviews-v2 not found"
    );
}

#[tokio::test]
async fn service_kind_applies_only_a_virtual_service() {
    let vs = documents("expected/service-kind-split-60-40.yaml").remove(0);
    let script = vec![list(VS, "productpage.example.com", vec![]), apply(VS, &vs)];
    let exp = experiment(SERVICE_KIND);
    let result = applied(script, &exp, RoutingAction::SetSplit(split(60, 40))).await;
    assert_eq!(result, Ok(()));
}

fn finalize_on_candidate() -> RoutingAction {
    RoutingAction::Finalize {
        winner: Winner::Candidate,
        split: TrafficSplit::ALL_CANDIDATE,
    }
}

fn with_cleanup(mut exp: Experiment) -> Experiment {
    exp.spec.cleanup = Some(iter8_core::model::Cleanup::Delete);
    exp
}

#[tokio::test]
async fn finalize_with_cleanup_delete_deletes_the_rules_iter8_created() {
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let name = format!("{REVIEWS}.iter8-experiment");
    let script = vec![
        list(VS, REVIEWS, vec![vs.clone()]),
        list(DR, REVIEWS, vec![dr.clone()]),
        list(VS, REVIEWS, vec![vs]),
        delete(VS, &name),
        list(DR, REVIEWS, vec![dr]),
        delete(DR, &name),
    ];
    let exp = with_cleanup(experiment(PART1));
    let result = applied(script, &exp, finalize_on_candidate()).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn finalize_with_cleanup_delete_after_the_rules_are_gone_creates_nothing() {
    let script = vec![list(VS, REVIEWS, vec![]), list(DR, REVIEWS, vec![])];
    let exp = with_cleanup(experiment(PART1));
    let result = applied(script, &exp, finalize_on_candidate()).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn finalize_with_cleanup_delete_leaves_taken_over_rules_stable() {
    // Rules taken over from a previous experiment (no init label) are not iter8's to delete.
    let (mut old_vs, mut old_dr) = expected("part1-split-80-20.yaml");
    for obj in [&mut old_vs, &mut old_dr] {
        obj["metadata"]["labels"]
            .as_object_mut()
            .expect("labels")
            .remove("iter8-tools/init");
    }
    let (vs, dr) = expected("part1-final-candidate.yaml");
    let script = vec![
        list(VS, REVIEWS, vec![old_vs]),
        list(DR, REVIEWS, vec![old_dr]),
        get_deployment("reviews-v3"),
        apply(VS, &vs),
        apply(DR, &dr),
    ];
    let exp = with_cleanup(experiment(PART1));
    let result = applied(script, &exp, finalize_on_candidate()).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn the_rollback_of_a_deleted_experiment_keeps_its_rules_despite_cleanup_delete() {
    // Deleting a running experiment rolls back to the baseline: the rules must stay, or the
    // Service would spread traffic over both versions.
    let (old_vs, old_dr) = expected("part1-split-80-20.yaml");
    // Stable on the baseline: its route and subset only, host and role labels only.
    let (mut vs, mut dr) = (old_vs.clone(), old_dr.clone());
    vs["spec"]["http"][0]["route"] = json!([{
        "destination": {"host": REVIEWS, "subset": "baseline"}, "weight": 100
    }]);
    dr["spec"]["subsets"] = json!([dr["spec"]["subsets"][0].clone()]);
    for obj in [&mut vs, &mut dr] {
        obj["metadata"]["labels"] =
            json!({"iter8-tools/host": REVIEWS, "iter8-tools/role": "stable"});
    }
    let mut exp = with_cleanup(experiment(PART1));
    exp.metadata.deletion_timestamp = Some("2026-12-06T10:00:00Z".parse().unwrap());
    let script = vec![
        list(VS, REVIEWS, vec![old_vs]),
        list(DR, REVIEWS, vec![old_dr]),
        get_deployment("reviews-v2"),
        apply(VS, &vs),
        apply(DR, &dr),
    ];
    let action = RoutingAction::Finalize {
        winner: Winner::Baseline,
        split: TrafficSplit::ALL_BASELINE,
    };
    let result = applied(script, &exp, action).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn cleanup_deletes_only_what_iter8_created_for_the_experiment() {
    let (vs, dr) = expected("part1-split-80-20.yaml");
    let user_vs = json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "reviews-by-hand", "namespace": NS,
                     "labels": {"iter8-tools/host": REVIEWS, "iter8-tools/role": "stable",
                                "iter8-tools/experiment": "reviews-v3-rollout.bookinfo-iter8"}},
        "spec": {"hosts": ["reviews"]}
    });
    let mut other_dr = dr.clone();
    other_dr["metadata"]["name"] = json!("left-by-another");
    other_dr["metadata"]["labels"]["iter8-tools/experiment"] = json!("other.bookinfo-iter8");
    let name = format!("{REVIEWS}.iter8-experiment");
    let script = vec![
        list(VS, REVIEWS, vec![user_vs, vs]),
        delete(VS, &name),
        list(DR, REVIEWS, vec![other_dr, dr]),
        delete(DR, &name),
    ];
    let exp = experiment(PART1);
    let deleted = with_api(script, |r| async move { r.cleanup(&exp).await })
        .await
        .expect("cleanup");
    assert_eq!(
        deleted,
        [
            format!("VirtualService {NS}/{name}"),
            format!("DestinationRule {NS}/{name}")
        ]
    );
}

#[tokio::test]
async fn api_errors_name_the_object() {
    let mut failing = list(VS, REVIEWS, vec![]);
    failing.status = 403;
    failing.answer = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": "virtualservices.networking.istio.io is forbidden", "reason": "Forbidden", "code": 403});
    let exp = experiment(PART1);
    let err = observed(vec![failing], &exp).await.expect_err("forbidden");
    assert!(
        err.message
            .starts_with("list VirtualService bookinfo-iter8/iter8-tools/host="),
        "{}",
        err.message
    );
    assert!(err.message.contains("forbidden"), "{}", err.message);
}
