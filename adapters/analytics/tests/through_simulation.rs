//! The remote adapter against our own server, end to end through the simulation: the tutorial's
//! first three canaries run in the simulated cluster with [`RemoteAnalytics`] calling our
//! analytics server (on 127.0.0.1, ephemeral port), whose metrics come from the same simulated
//! world at virtual time. Compared with the built-in analytics on the same seed (part 1 also
//! under the other strategies); and the server stopped mid-run.
//!
//! The tests are plain `#[test]`s: the simulation steps on the test thread and hands each
//! reconcile to a tokio runtime's `block_on`, while the server runs on the runtime's workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iter8_analytics::{AppState, RemoteAnalytics, router};
use iter8_core::{ConditionStatus, ConditionType, ExperimentStatus, Phase, TrafficSplit};
use iter8_rand::ChaCha;
use iter8_sim::analytics::{ExternalAnalytics, ReconcileFuture, SharedMetrics};
use iter8_sim::tutorial::{self, NAMESPACE, PROFILES};
use iter8_sim::world::World;
use iter8_sim::{Profile, Reconciled, Sim, SimTime, Target};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SEED: u64 = 0;

/// The URL the tutorial's manifests name; replaced by the server's.
const MANIFEST_SERVICE: &str = "http://iter8-analytics:8080";

fn runtime() -> Arc<Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// `iter8 analytics serve` in-process over the simulated world, until stopped.
struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves on `addr` (port 0: an ephemeral one).
    fn start(rt: &Runtime, world: Arc<World>, addr: SocketAddr) -> Server {
        let metrics = SharedMetrics(world);
        let clock = metrics.clone();
        let state =
            AppState::new(metrics, "simulated Prometheus", ChaCha).with_clock(move || clock.now());
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = rt.spawn(async move {
            let _ = axum::serve(listener, router(Arc::new(state)))
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Server {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes idle connections, and waits until the server has ended.
    fn stop(&mut self, rt: &Runtime) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            rt.block_on(task).unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed assertion skipped `stop`: still end the server (the runtime ends the task).
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The tutorial's cluster: Bookinfo, the example profiles, load on reviews for a minute.
fn cluster() -> Sim {
    let mut sim = Sim::new(SEED);
    let mut profile = Profile::default();
    for (file, text) in PROFILES {
        profile.merge(Profile::from_yaml(text, file).unwrap());
    }
    sim.add_profiles(&profile);
    for (file, text) in [
        tutorial::manifests::BOOKINFO,
        tutorial::manifests::BOOKINFO_GATEWAY,
    ] {
        sim.apply_yaml(text, NAMESPACE, file).unwrap();
    }
    sim.add_source(
        Target::Service {
            namespace: NAMESPACE.into(),
            name: "reviews".into(),
        },
        profile.rate(),
    );
    sim.run_for(Duration::from_secs(60), &mut |_| {});
    sim
}

/// Sends the simulation's analysis to the service at `spec.analysis.analyticsService`.
fn use_remote(sim: &mut Sim, rt: &Arc<Runtime>, service: &str, timeout: Duration) {
    let rt = rt.clone();
    let remote = RemoteAnalytics::new(timeout)
        .unwrap()
        .with_allowed_endpoints([service])
        .unwrap();
    sim.set_analytics(ExternalAnalytics::new(
        remote,
        move |f: ReconcileFuture<'_>| rt.block_on(f),
    ));
}

/// One reconcile as recorded: when, which experiment, the status it wrote.
type History = Vec<(SimTime, String, ExperimentStatus)>;

fn observe(history: &mut History) -> impl FnMut(&Reconciled<'_>) + '_ {
    |r| {
        history.push((
            r.time,
            r.before.name().to_string(),
            r.decision.status.clone(),
        ))
    }
}

/// Applies an experiment (its analytics service replaced by `service`), then its candidate 11 s
/// later, and runs until it completes.
fn canary(
    sim: &mut Sim,
    history: &mut History,
    service: &str,
    experiment: (&str, &str),
    candidate: (&str, &str),
) -> ExperimentStatus {
    let (file, text) = experiment;
    let text = text.replace(MANIFEST_SERVICE, service);
    assert_ne!(text, experiment.1, "{file} names {MANIFEST_SERVICE}");
    sim.apply_yaml(&text, NAMESPACE, file).unwrap();
    sim.run_for(Duration::from_secs(11), &mut observe(history));
    sim.apply_yaml(candidate.1, NAMESPACE, candidate.0).unwrap();
    let exp = iter8_core::manifest::parse_experiments(&text).unwrap()[0]
        .clone()
        .unwrap()
        .experiment;
    let id = sim.world().lock().store.id(NAMESPACE, exp.name()).unwrap();
    let limit = sim.now().after(Duration::from_secs(3600));
    assert!(
        sim.run_until_completed(id, limit, &mut observe(history)),
        "{} did not complete: {:?}",
        exp.name(),
        history.last()
    );
    sim.get(id).unwrap().status
}

/// The tutorial's parts 1 to 3 (v2 -> v3 good, v3 -> v4 slow, v3 -> v5 failing): each final
/// status, and every status written on the way.
fn parts_1_to_3(sim: &mut Sim, service: &str) -> (Vec<ExperimentStatus>, History) {
    use tutorial::manifests::*;
    let mut history = History::new();
    let mut ends = Vec::new();
    for (experiment, candidate) in [
        (CANARY_V2_V3, REVIEWS_V3),
        (CANARY_V3_V4, REVIEWS_V4),
        (CANARY_V3_V5, REVIEWS_V5),
    ] {
        ends.push(canary(sim, &mut history, service, experiment, candidate));
        sim.run_for(Duration::from_secs(30), &mut observe(&mut history));
    }
    (ends, history)
}

/// Every split an experiment's statuses went through, in order.
fn splits(history: &History, name: &str) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for (_, n, status) in history {
        if n == name
            && status.start_timestamp.is_some()
            && let Some(s) = status.traffic_split_percentage
            && out.last() != Some(&s.candidate)
        {
            out.push(s.candidate);
        }
    }
    out
}

#[test]
fn the_tutorial_canaries_run_through_our_server_as_with_built_in_analytics() {
    let rt = runtime();
    let mut sim = cluster();
    let mut server = Server::start(&rt, sim.shared_world(), "127.0.0.1:0".parse().unwrap());
    let url = server.url();
    use_remote(&mut sim, &rt, &url, Duration::from_secs(10));
    let (ends, remote) = parts_1_to_3(&mut sim, &url);
    server.stop(&rt);

    // Good candidate: rolled forward step by step to all traffic.
    let v3 = &ends[0];
    assert_eq!(
        v3.message.as_deref(),
        Some("ExperimentSucceeded: All Success Criteria Were Met")
    );
    assert_eq!(v3.split(), TrafficSplit::ALL_CANDIDATE);
    assert_eq!(v3.current_iteration, 8);
    assert_eq!(splits(&remote, "reviews-v3-rollout"), [20, 40, 60, 80, 100]);
    let a = v3.assessment.as_ref().unwrap();
    assert!(a.all_success_criteria_met);
    assert_eq!(
        a.success_criteria[0].conclusions,
        ["iter8_latency of the candidate is within threshold 200 . "]
    );

    // Slow candidate: latency over the threshold every time; rolled back.
    let v4 = &ends[1];
    assert_eq!(
        v4.message.as_deref(),
        Some("ExperimentFailed: Not All Success Criteria Met")
    );
    assert_eq!(v4.split(), TrafficSplit::ALL_BASELINE);
    assert_eq!(splits(&remote, "reviews-v4-rollout"), [20, 0]);
    assert!(!v4.assessment.as_ref().unwrap().all_success_criteria_met);

    // Failing candidate: the error rate's stopOnFailure aborts before the last iteration.
    let v5 = &ends[2];
    assert_eq!(v5.message.as_deref(), Some("ExperimentFailed: Aborted"));
    assert_eq!(v5.split(), TrafficSplit::ALL_BASELINE);
    assert!(v5.current_iteration < 6, "{}", v5.current_iteration);
    let a = v5.assessment.as_ref().unwrap();
    let errors = a
        .success_criteria
        .iter()
        .find(|c| c.metric_name == "iter8_error_rate")
        .unwrap();
    assert!(!errors.success_criterion_met);
    assert!(errors.abort_experiment);

    // The same seed with the built-in analytics writes the very same statuses at the same
    // virtual times: splits, iterations, assessments (values, conclusions), analysis states.
    let mut sim = cluster();
    let (builtin_ends, builtin) = parts_1_to_3(&mut sim, &url);
    assert_eq!(ends, builtin_ends);
    assert_eq!(remote.len(), builtin.len());
    for (r, b) in remote.iter().zip(&builtin) {
        assert_eq!(r, b);
    }
}

#[test]
fn a_service_stopped_mid_run_holds_traffic_until_it_is_back() {
    let rt = runtime();
    let mut sim = cluster();
    let mut server = Server::start(&rt, sim.shared_world(), "127.0.0.1:0".parse().unwrap());
    let addr = server.addr;
    use_remote(&mut sim, &rt, &server.url(), Duration::from_secs(5));
    let (file, text) = tutorial::manifests::CANARY_V2_V3;
    let text = text.replace(MANIFEST_SERVICE, &server.url());
    sim.apply_yaml(&text, NAMESPACE, file).unwrap();
    let (file, text) = tutorial::manifests::REVIEWS_V3;
    sim.apply_yaml(text, NAMESPACE, file).unwrap();
    let mut history = History::new();
    // Three iterations (at 0, 30 and 60 s): 60% to the candidate.
    sim.run_for(Duration::from_secs(75), &mut observe(&mut history));
    let exp = sim.experiment(NAMESPACE, "reviews-v3-rollout").unwrap();
    let held = exp.status.split();
    assert_eq!(held.candidate, 60);
    assert_eq!(exp.status.phase, Some(Phase::Progressing));

    server.stop(&rt);
    history.clear();
    // Down for less than the failure budget (4 failed attempts, 30 s apart): traffic holds.
    sim.run_for(Duration::from_secs(80), &mut observe(&mut history));
    assert!(history.len() >= 2, "{} reconciles", history.len());
    for (t, _, status) in &history {
        assert_eq!(status.phase, Some(Phase::Pause), "at {t}");
        assert_eq!(status.split(), held, "at {t}");
        let message = status.message.as_deref().unwrap();
        assert!(
            message.starts_with("AnalyticsServiceError: analytics service: POST ")
                && message.contains("cannot reach the service"),
            "{message}"
        );
        let c = status
            .condition(&ConditionType::AnalyticsServiceNormal)
            .unwrap();
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason, "AnalyticsServiceError");
    }
    // The routing itself never moved.
    let exp = sim.experiment(NAMESPACE, "reviews-v3-rollout").unwrap();
    assert_eq!(sim.world().lock().router.observe(&exp).split, Some(held));
    assert_eq!(exp.status.current_iteration, 3);

    // Back on the same address: the experiment resumes and succeeds.
    let mut server = Server::start(&rt, sim.shared_world(), addr);
    history.clear();
    let id = sim
        .world()
        .lock()
        .store
        .id(NAMESPACE, "reviews-v3-rollout")
        .unwrap();
    let limit = sim.now().after(Duration::from_secs(3600));
    assert!(sim.run_until_completed(id, limit, &mut observe(&mut history)));
    server.stop(&rt);
    let status = sim.get(id).unwrap().status;
    assert_eq!(
        status.message.as_deref(),
        Some("ExperimentSucceeded: All Success Criteria Were Met")
    );
    assert_eq!(status.split(), TrafficSplit::ALL_CANDIDATE);
    assert_eq!(
        status
            .condition(&ConditionType::AnalyticsServiceNormal)
            .unwrap()
            .status,
        ConditionStatus::True
    );
}

#[test]
fn the_other_strategies_decide_through_our_server_as_built_in() {
    let rt = runtime();
    for strategy in [
        "epsilon_greedy",
        "posterior_bayesian_routing",
        "optimistic_bayesian_routing",
    ] {
        let (file, text) = tutorial::manifests::CANARY_V2_V3;
        let text = text.replace(
            "strategy: check_and_increment",
            &format!("strategy: {strategy}"),
        );
        assert!(text.contains(strategy));
        let run = |remote: bool| {
            let mut sim = cluster();
            let mut server = Server::start(&rt, sim.shared_world(), "127.0.0.1:0".parse().unwrap());
            if remote {
                use_remote(&mut sim, &rt, &server.url(), Duration::from_secs(10));
            }
            let mut history = History::new();
            let end = canary(
                &mut sim,
                &mut history,
                &server.url(),
                (file, &text),
                tutorial::manifests::REVIEWS_V3,
            );
            server.stop(&rt);
            (end, history)
        };
        let (end, remote) = run(true);
        let (builtin_end, builtin) = run(false);
        assert_eq!(end.phase, Some(Phase::Completed), "{strategy}");
        assert!(
            end.assessment.as_ref().unwrap().all_success_criteria_met,
            "{strategy}"
        );
        assert!(
            splits(&remote, "reviews-v3-rollout").len() > 1,
            "{strategy}"
        );
        assert_eq!(end, builtin_end, "{strategy}");
        assert_eq!(remote, builtin, "{strategy}");
    }
}
