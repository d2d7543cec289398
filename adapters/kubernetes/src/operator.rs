//! The operator: the controller, the HTTP endpoints, optional Lease-based leader election and
//! graceful shutdown, wired together. The `iter8 operator` command sets up the process (logging,
//! TLS provider, runtime, signals), builds the adapters and the client, and calls [`run`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

use crate::controller::{self, Adapters, Settings};
use crate::error::KubeError;
use crate::metrics::{ApiRequests, OperatorMetrics};
use crate::server::{self, Health};

/// Lease-based leader election: only the holder of the Lease reconciles.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// The Lease's namespace (the operator's).
    pub namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// This instance's identity (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
}

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// The controller's settings.
    pub controller: Settings,
    /// Leader election, when several replicas run.
    pub leader_election: Option<LeaderElection>,
}

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The endpoints' address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election on Lease {namespace}/{name}: {message}")]
    LeaderElection {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What failed.
        message: String,
    },
    /// This instance lost the Lease while reconciling; it stops so that it restarts cleanly.
    #[error("lost the leadership Lease {namespace}/{name}")]
    LostLeadership {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
    },
}

/// Builds a client from a kubeconfig file (and context), or infers one: `KUBECONFIG`,
/// `~/.kube/config`, then the in-cluster service account. Every request it sends is counted in
/// `requests` (`/metrics`: `iter8_kubernetes_api_requests_total`).
pub async fn client(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    requests: &ApiRequests,
) -> Result<Client, KubeError> {
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(&path)
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    counting_client(config, requests)
}

/// A client for `config` whose requests are counted in `requests`.
pub fn counting_client(config: kube::Config, requests: &ApiRequests) -> Result<Client, KubeError> {
    Ok(ClientBuilder::try_from(config)
        .map_err(|e| KubeError::Config(e.to_string()))?
        .with_layer(&requests.layer())
        .build())
}

/// Binds the address `/metrics`, `/healthz` and `/readyz` are served on.
pub async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener, OperatorError> {
    server::bind(addr)
        .await
        .map_err(|source| OperatorError::Listen { addr, source })
}

/// Runs the operator until `shutdown` completes (or, with leader election, until the Lease is
/// lost), serving the endpoints on `listener` throughout, with `metrics` on `/metrics`.
pub async fn run(
    client: Client,
    settings: OperatorSettings,
    adapters: Adapters,
    metrics: Arc<OperatorMetrics>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OperatorError> {
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (endpoints_tx, endpoints_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let endpoints = tokio::spawn(server::serve(
        listener,
        metrics.clone(),
        health.clone(),
        stopped(endpoints_rx),
    ));
    let forward = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let result = match &settings.leader_election {
        None => {
            health.set_ready(true);
            tracing::info!(namespace = ?settings.controller.namespace, "operator started");
            controller::run(
                client,
                settings.controller.clone(),
                adapters,
                metrics,
                stopped(stop_rx),
            )
            .await;
            Ok(())
        }
        Some(election) => {
            lead(
                client, &settings, election, adapters, metrics, &health, stop_rx,
            )
            .await
        }
    };
    tracing::info!("operator stopped");
    health.set_ready(false);
    forward.abort();
    let _ = endpoints_tx.send(true);
    let _ = endpoints.await;
    result
}

/// Waits for the Lease, then reconciles until shutdown or until the Lease is lost.
async fn lead(
    client: Client,
    settings: &OperatorSettings,
    election: &LeaderElection,
    adapters: Adapters,
    metrics: Arc<OperatorMetrics>,
    health: &Health,
    stop: watch::Receiver<bool>,
) -> Result<(), OperatorError> {
    let fail = |message: String| OperatorError::LeaderElection {
        namespace: election.namespace.clone(),
        name: election.lease_name.clone(),
        message,
    };
    let seconds = election.duration.as_secs().max(2);
    let manager =
        kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &election.lease_name)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(seconds)
            .with_grace((seconds / 3).max(1))
            .build()
            .await
            .map_err(|e| fail(e.to_string()))?;
    let (mut leader, task) = manager.watch().await;
    // A standby is healthy and ready: it only waits for the Lease.
    health.set_ready(true);
    tracing::info!(lease = %election.lease_name, identity = %election.identity, "waiting for leadership");
    let mut stop_wait = stop.clone();
    let became_leader = tokio::select! {
        r = leader.wait_for(|l| *l) => Some(r.is_ok()),
        _ = stop_wait.wait_for(|s| *s) => None,
    };
    match became_leader {
        Some(true) => {}
        Some(false) => {
            task.abort();
            return Err(fail("the lease manager stopped".to_string()));
        }
        None => {
            drop(leader);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            return Ok(());
        }
    }
    tracing::info!(lease = %election.lease_name, "leading");
    let mut stop_run = stop.clone();
    let reconciling = controller::run(
        client,
        settings.controller.clone(),
        adapters,
        metrics,
        async move {
            let _ = stop_run.wait_for(|s| *s).await;
        },
    );
    // On shutdown the controller lets in-flight reconciles finish: this instance still holds
    // the Lease. On Lease loss (or if the lease manager stops) another instance may already
    // lead, so the controller is dropped at once, and with it every in-flight reconcile (they
    // run inside its future), before any of them can write a status or a route decided as the
    // former leader.
    let mut leading = leader.clone();
    let lost = tokio::select! {
        _ = reconciling => false,
        _ = leading.wait_for(|l| !*l) => {
            tracing::warn!(lease = %election.lease_name, "lost the Lease: in-flight reconciles cancelled");
            true
        }
    };
    // Dropping the channel (every receiver) makes the manager release the Lease.
    drop(leading);
    drop(leader);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    if lost {
        return Err(OperatorError::LostLeadership {
            namespace: election.namespace.clone(),
            name: election.lease_name.clone(),
        });
    }
    Ok(())
}
