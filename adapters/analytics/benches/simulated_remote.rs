//! What remote analytics costs a simulated experiment: the tutorial's part 1 canary (reviews-v2
//! to reviews-v3, 8 iterations) run in the simulated cluster with the built-in analytics, then
//! with `RemoteAnalytics` calling our server on 127.0.0.1 over the simulated world.
//!
//! `cargo bench -p iter8-analytics --bench simulated_remote`; `BENCH_RUNS` (default 200) sets
//! the runs per mode. Prints the median and p90 wall time of a run and per reconcile.

use iter8_rand::ChaCha;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iter8_analytics::{AppState, RemoteAnalytics, router};
use iter8_sim::analytics::{ExternalAnalytics, ReconcileFuture, SharedMetrics};
use iter8_sim::tutorial::{NAMESPACE, PROFILES, manifests};
use iter8_sim::{Profile, Sim, Target};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bookinfo under load for a minute.
fn cluster() -> Sim {
    let mut sim = Sim::with_options(0, false);
    let mut profile = Profile::default();
    for (file, text) in PROFILES {
        profile.merge(Profile::from_yaml(text, file).expect("profile"));
    }
    sim.add_profiles(&profile);
    for (file, text) in [manifests::BOOKINFO, manifests::BOOKINFO_GATEWAY] {
        sim.apply_yaml(text, NAMESPACE, file).expect("manifest");
    }
    let reviews = Target::Service {
        namespace: NAMESPACE.into(),
        name: "reviews".into(),
    };
    sim.add_source(reviews, profile.rate());
    sim.run_for(Duration::from_secs(60), &mut |_| {});
    sim
}

/// Our server over `sim`'s world, until `stop`.
struct Server {
    url: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    fn stop(self, rt: &Runtime) {
        let _ = self.shutdown.send(());
        rt.block_on(self.task).expect("server task");
    }
}

fn serve(rt: &Runtime, sim: &Sim) -> Server {
    let metrics = SharedMetrics(sim.shared_world());
    let clock = metrics.clone();
    let state =
        AppState::new(metrics, "simulated Prometheus", ChaCha).with_clock(move || clock.now());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = rt.spawn(async move {
        let _ = axum::serve(listener, router(Arc::new(state)))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Server {
        url,
        shutdown,
        task,
    }
}

/// One run of part 1; (wall time of the experiment, reconciles).
fn run(rt: Option<&Arc<Runtime>>) -> (Duration, u64) {
    let mut sim = cluster();
    let server = rt.map(|rt| serve(rt, &sim));
    let url = server
        .as_ref()
        .map_or_else(|| "http://unused".to_string(), |s| s.url.clone());
    if let Some(rt) = rt {
        let handle = rt.clone();
        let remote = RemoteAnalytics::new(Duration::from_secs(10))
            .and_then(|r| r.with_allowed_endpoints([&url]))
            .expect("client");
        sim.set_analytics(ExternalAnalytics::new(
            remote,
            move |f: ReconcileFuture<'_>| handle.block_on(f),
        ));
    }
    let (file, text) = manifests::CANARY_V2_V3;
    let text = text.replace("http://iter8-analytics:8080", &url);
    let before = sim.reconciles();
    let started = Instant::now();
    sim.apply_yaml(&text, NAMESPACE, file).expect("experiment");
    let (file, text) = manifests::REVIEWS_V3;
    sim.apply_yaml(text, NAMESPACE, file).expect("candidate");
    let id = sim
        .world()
        .lock()
        .store
        .id(NAMESPACE, "reviews-v3-rollout")
        .expect("experiment id");
    let limit = sim.now().after(Duration::from_secs(3600));
    assert!(sim.run_until_completed(id, limit, &mut |_| {}));
    let wall = started.elapsed();
    if let (Some(server), Some(rt)) = (server, rt) {
        server.stop(rt);
    }
    (wall, sim.reconciles() - before)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` only a short run checks that it works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 200 } else { 2 })
        .max(1);
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    );
    for (mode, rt) in [("built-in", None), ("remote", Some(&rt))] {
        let mut walls = Vec::with_capacity(runs);
        let mut reconciles = 0;
        for _ in 0..runs {
            let (wall, n) = run(rt);
            walls.push(wall);
            reconciles = n;
        }
        walls.sort();
        let per = |d: Duration| d / u32::try_from(reconciles.max(1)).unwrap_or(u32::MAX);
        let (p50, p90) = (percentile(&walls, 0.5), percentile(&walls, 0.9));
        println!(
            "{mode:>8}: {runs} runs of {reconciles} reconciles; per run p50 {p50:?} p90 {p90:?}; per reconcile p50 {:?} p90 {:?}",
            per(p50),
            per(p90),
        );
    }
}
