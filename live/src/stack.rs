//! Everything a live run needs, started on 127.0.0.1 and stopped when dropped: the `reviews`
//! versions (in process), Envoy routing between them, Prometheus scraping Envoy, and load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use iter8_core::model::Experiment;
use iter8_core::observation::Targets;
use iter8_core::ports::{PortError, TargetLocator};
use iter8_example_reviews::{Behavior, ReviewsServer};

use crate::LiveError;
use crate::load::{LoadGenerator, LoadSpec, LoadStats};
use crate::process::{ENVOY, ManagedProcess, PROMETHEUS, free_port, missing};
use iter8_envoy::admin::EnvoyAdmin;
use iter8_envoy::bootstrap::EnvoyLayout;
use iter8_envoy::metrics::prometheus_config;
use iter8_envoy::router::EnvoyRouter;
use iter8_envoy::routes::write_atomically;

/// How the stack is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct StackOptions {
    /// The service's name (the route configuration's name), e.g. `reviews`.
    pub service: String,
    /// The namespace the versions' series are labelled with (the experiments' namespace).
    pub namespace: String,
    /// How often Prometheus scrapes Envoy.
    pub scrape_every: Duration,
    /// Latencies that replace a version's own (e.g. `reviews-v4` → 500 ms in tests).
    pub latency_overrides: BTreeMap<String, Duration>,
    /// How long to wait for Envoy and Prometheus to become ready.
    pub ready_within: Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            service: "reviews".into(),
            namespace: "bookinfo-iter8".into(),
            scrape_every: Duration::from_secs(1),
            latency_overrides: BTreeMap::new(),
            ready_within: Duration::from_secs(30),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running parts; every process and server is stopped when this is dropped.
pub struct LiveStack {
    options: StackOptions,
    layout: EnvoyLayout,
    router: Arc<EnvoyRouter>,
    envoy: Mutex<Option<ManagedProcess>>,
    prometheus: Mutex<Option<ManagedProcess>>,
    prometheus_port: u16,
    backends: Mutex<BTreeMap<String, ReviewsServer>>,
    load: Mutex<Option<LoadGenerator>>,
    // Last: removed after the processes using it are stopped.
    dir: tempfile::TempDir,
}

impl LiveStack {
    /// Checks that Envoy and Prometheus are installed, then starts `serving` (e.g.
    /// `reviews-v2`), Envoy routing all traffic to it, and Prometheus scraping Envoy.
    pub async fn start(options: StackOptions, serving: &str) -> Result<LiveStack, LiveError> {
        let absent = missing(&[ENVOY, PROMETHEUS]);
        if !absent.is_empty() {
            return Err(LiveError::Missing(
                absent.iter().map(ToString::to_string).collect(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("iter8-live-")
            .tempdir()
            .map_err(|e| LiveError::Setup(format!("cannot create a work directory: {e}")))?;
        let port = || free_port().map_err(|e| LiveError::Setup(format!("no free port: {e}")));
        let layout = EnvoyLayout {
            dir: dir.path().to_path_buf(),
            admin_port: port()?,
            listener_port: port()?,
            route_name: options.service.clone(),
        };
        let router = Arc::new(EnvoyRouter::new(layout.clone())?);
        let stack = LiveStack {
            prometheus_port: port()?,
            options,
            layout,
            router,
            envoy: Mutex::new(None),
            prometheus: Mutex::new(None),
            backends: Mutex::new(BTreeMap::new()),
            load: Mutex::new(None),
            dir,
        };
        let addr = stack.start_backend(serving).await?;
        stack
            .router
            .write_initial(&[(serving.to_string(), addr)], serving)?;
        write_atomically(&stack.layout.bootstrap_path(), &stack.layout.bootstrap())?;
        stack.start_envoy().await?;
        let config = prometheus_config(
            stack.layout.admin_port,
            &stack.options.namespace,
            stack.options.scrape_every,
        )
        .map_err(|e| LiveError::Setup(e.to_string()))?;
        std::fs::write(stack.prometheus_config_path(), config)
            .map_err(|e| LiveError::Setup(format!("cannot write prometheus.yml: {e}")))?;
        stack.start_prometheus().await?;
        Ok(stack)
    }

    fn prometheus_config_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.yml")
    }

    /// The work directory (configuration files, logs, Prometheus' data).
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Envoy's files and ports.
    pub fn layout(&self) -> &EnvoyLayout {
        &self.layout
    }

    /// The Envoy router.
    pub fn router(&self) -> &EnvoyRouter {
        &self.router
    }

    /// Envoy's admin API.
    pub fn admin(&self) -> &EnvoyAdmin {
        self.router.admin()
    }

    /// Prometheus' base URL.
    pub fn prometheus_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.prometheus_port)
    }

    /// The URL load is sent to (through Envoy).
    pub fn service_url(&self) -> String {
        format!("{}/{}/0", self.layout.listener_url(), self.options.service)
    }

    /// The PIDs of the processes started (Envoy, Prometheus).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut out = Vec::new();
        if let Some(pid) = lock(&self.envoy).as_ref().and_then(ManagedProcess::pid) {
            out.push(("envoy", pid));
        }
        if let Some(pid) = lock(&self.prometheus)
            .as_ref()
            .and_then(ManagedProcess::pid)
        {
            out.push(("prometheus", pid));
        }
        out
    }

    async fn start_backend(&self, version: &str) -> Result<SocketAddr, LiveError> {
        let mut behavior =
            Behavior::of(version).map_err(|e| LiveError::Setup(format!("{version}: {e}")))?;
        if let Some(latency) = self.options.latency_overrides.get(version) {
            behavior = behavior.with_latency(*latency);
        }
        let server = ReviewsServer::start(version, behavior, 0)
            .await
            .map_err(|e| LiveError::Setup(format!("{version}: {e}")))?;
        let addr = server.addr();
        lock(&self.backends).insert(version.to_string(), server);
        Ok(addr)
    }

    /// Deploys a version: starts its server and gives Envoy a cluster for it.
    pub async fn deploy(&self, version: &str) -> Result<SocketAddr, LiveError> {
        let addr = self.start_backend(version).await?;
        self.router.add_backend(version, addr).await?;
        Ok(addr)
    }

    /// Whether a version is deployed.
    pub fn is_deployed(&self, version: &str) -> bool {
        lock(&self.backends).contains_key(version)
    }

    /// Stops a version's server.
    pub fn undeploy(&self, version: &str) {
        lock(&self.backends).remove(version);
    }

    /// Starts (or restarts) Envoy from the files on disk and waits until it serves the routes.
    pub async fn start_envoy(&self) -> Result<(), LiveError> {
        self.stop_envoy();
        let args = vec![
            "-c".to_string(),
            self.layout.bootstrap_path().display().to_string(),
            "--disable-hot-restart".to_string(),
            "--log-level".to_string(),
            "warn".to_string(),
        ];
        let mut process = ManagedProcess::spawn(&ENVOY, &args, &self.dir.path().join("envoy.log"))?;
        let admin = self.admin().clone();
        let route = self.layout.route_name.clone();
        process
            .wait_ready(self.options.ready_within, || {
                let (admin, route) = (admin.clone(), route.clone());
                async move { admin.ready().await && matches!(admin.route(&route).await, Ok(Some(_))) }
            })
            .await?;
        *lock(&self.envoy) = Some(process);
        Ok(())
    }

    /// Stops Envoy (by PID).
    pub fn stop_envoy(&self) {
        if let Some(mut p) = lock(&self.envoy).take() {
            p.stop();
        }
    }

    /// Starts (or restarts) Prometheus over the same data directory and waits for `/-/ready`.
    pub async fn start_prometheus(&self) -> Result<(), LiveError> {
        self.stop_prometheus();
        let args = vec![
            format!("--config.file={}", self.prometheus_config_path().display()),
            format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("prometheus-data").display()
            ),
            format!("--web.listen-address=127.0.0.1:{}", self.prometheus_port),
            "--log.level=warn".to_string(),
        ];
        let mut process =
            ManagedProcess::spawn(&PROMETHEUS, &args, &self.dir.path().join("prometheus.log"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| LiveError::Setup(e.to_string()))?;
        let ready_url = format!("{}/-/ready", self.prometheus_url());
        process
            .wait_ready(self.options.ready_within, || {
                let (http, url) = (http.clone(), ready_url.clone());
                async move {
                    http.get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .await?;
        *lock(&self.prometheus) = Some(process);
        Ok(())
    }

    /// Stops Prometheus (by PID).
    pub fn stop_prometheus(&self) {
        if let Some(mut p) = lock(&self.prometheus).take() {
            p.stop();
        }
    }

    /// Starts sending `rate_per_sec` requests per second through Envoy for at most `max_for`.
    pub fn start_load(&self, rate_per_sec: f64, max_for: Duration) -> Result<(), LiveError> {
        let load = LoadGenerator::start(LoadSpec::new(self.service_url(), rate_per_sec, max_for))
            .map_err(|e| LiveError::Setup(e.to_string()))?;
        *lock(&self.load) = Some(load);
        Ok(())
    }

    /// What the load generator has seen so far.
    pub fn load_stats(&self) -> LoadStats {
        lock(&self.load)
            .as_ref()
            .map(LoadGenerator::stats)
            .unwrap_or_default()
    }

    /// Forgets when the first 5xx arrived.
    pub fn reset_first_5xx(&self) {
        if let Some(load) = lock(&self.load).as_ref() {
            load.reset_first_5xx();
        }
    }

    /// Stops everything: load, Prometheus, Envoy, the versions' servers.
    pub fn stop(&self) {
        if let Some(load) = lock(&self.load).take() {
            load.stop();
        }
        self.stop_prometheus();
        self.stop_envoy();
        lock(&self.backends).clear();
    }
}

impl Drop for LiveStack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The targets are the versions whose servers run; the service is Envoy's listener.
#[async_trait]
impl TargetLocator for LiveStack {
    async fn locate(&self, experiment: &Experiment) -> Result<Targets, PortError> {
        let t = &experiment.spec.target_service;
        Ok(Targets {
            service: true,
            baseline: self.is_deployed(t.baseline()),
            candidate: self.is_deployed(t.candidate()),
            claimed_by: None,
            claimed_target: None,
        })
    }

    async fn delete_target(&self, _experiment: &Experiment, name: &str) -> Result<(), PortError> {
        self.undeploy(name);
        Ok(())
    }
}
