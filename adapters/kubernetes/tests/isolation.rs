//! Each reconcile is isolated: a panic in one experiment's reconcile (injected through the
//! routing port) becomes that experiment's error, and the operator goes on with the others.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use iter8_core::Experiment;
use iter8_core::action::RoutingAction;
use iter8_core::driver::BuiltinAnalytics;
use iter8_core::engine::NoDashboard;
use iter8_core::observation::RoutingObservation;
use iter8_core::ports::{PortError, TrafficRouter};
use iter8_istio::IstioRouter;
use iter8_kubernetes::controller::Adapters;
use iter8_rand::ChaCha;
use serde_json::json;
use support::*;

const PART1: &str = "reviews-v3-rollout";
const BOOM: &str = "boom";

/// Istio routing, except that observing experiment [`BOOM`]'s routing panics.
struct PanicsForBoom(IstioRouter);

#[async_trait]
impl TrafficRouter for PanicsForBoom {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        if experiment.name() == BOOM {
            panic!("injected bug while observing the routing of {BOOM}");
        }
        self.0.observe(experiment).await
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        self.0.apply(experiment, action).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reconcile_is_that_experiments_error_and_the_others_go_on() {
    let cluster = cluster("isolation").await;
    cluster.apply_file("reviews-v3.yaml").await;
    let adapters = Adapters {
        router: Arc::new(PanicsForBoom(IstioRouter::new(cluster.client.clone()))),
        analytics: Arc::new(BuiltinAnalytics::new(
            FakeMetrics::new(120.0, 100.0),
            ChaCha,
        )),
        dashboard: Arc::new(NoDashboard),
        events: None,
    };
    let operator = Running::start_over(&cluster, adapters, None).await;

    let mut boom = part1_experiment();
    boom["metadata"]["name"] = json!(BOOM);
    cluster.apply(&boom).await;
    wait_for(
        &cluster,
        BOOM,
        10,
        message_is("InternalError: injected bug while observing the routing of boom"),
    )
    .await;
    assert_eq!(
        experiment(&cluster, BOOM).await.unwrap()["status"]["phase"],
        json!("Pause")
    );
    wait_for_event(&cluster, BOOM, "InternalError").await;

    cluster.apply(&part1_experiment()).await;
    wait_for(&cluster, PART1, 30, completed).await;
    assert_eq!(
        experiment(&cluster, PART1).await.unwrap()["status"]["message"],
        json!("ExperimentSucceeded: All Success Criteria Were Met")
    );
    operator.metrics_with("cause=\"panic\"", 5).await;
    // The operator is still running and stops cleanly.
    operator.stop().await.expect("a clean stop");
}
