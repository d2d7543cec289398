//! The operator: the controller, the HTTP endpoints, optional Lease-based leader election and
//! graceful shutdown, wired together. The `iter8 operator` command sets up the process (logging,
//! TLS provider, runtime, signals), builds the adapters and the client, and calls [`run`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
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
    /// This instance lost the Lease while reconciling, or could no longer renew it in time; it
    /// stops so that it restarts cleanly.
    #[error("lost the leadership Lease {namespace}/{name}: {reason}")]
    LostLeadership {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Why: another holder, or the last renewal about to run out.
        reason: String,
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
    // At least 3 s: below that a renewal, its read and the step-down margin do not fit.
    let seconds = election.duration.as_secs().max(3);
    // Renewing at half-life leaves the other half for a failed renewal to be retried.
    let manager =
        kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &election.lease_name)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(seconds)
            .with_grace(seconds.div_ceil(2))
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
    let leases: Api<Lease> = Api::namespaced(client.clone(), &election.namespace);
    let in_doubt = lease_in_doubt(leases.clone(), election, Duration::from_secs(seconds));
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
    // the Lease. On Lease loss (or if the lease manager stops, or the last renewal is about to
    // run out) another instance may lead, or soon, so the controller is dropped at once, and
    // with it every in-flight reconcile (they run inside its future), before any of them can
    // write a status or a route decided as the former leader.
    let mut leading = leader.clone();
    let lost = tokio::select! {
        _ = reconciling => None,
        _ = leading.wait_for(|l| !*l) => Some(None),
        reason = in_doubt => Some(Some(reason)),
    };
    let lost = match lost {
        None => None,
        Some(Some(reason)) => Some(reason),
        Some(None) => Some(holder(&leases, election).await),
    };
    if let Some(reason) = &lost {
        tracing::warn!(lease = %election.lease_name, %reason, "lost the Lease: in-flight reconciles cancelled");
        // Not released: the manager's idea of the holder may be stale, and its release clears
        // the holder without a precondition, which could free another instance's Lease.
        task.abort();
    } else {
        // A clean stop: dropping the channel (every receiver) makes the manager release the
        // Lease, so a standby takes over at once.
        drop(leading);
        drop(leader);
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(reason) = lost {
        return Err(OperatorError::LostLeadership {
            namespace: election.namespace.clone(),
            name: election.lease_name.clone(),
            reason,
        });
    }
    Ok(())
}

/// Resolves, with the reason, once this instance can no longer be sure it holds the Lease: the
/// Lease names another holder or is gone, or the last renewal it read is about to run out by
/// this process' clock (the clock the renewal was stamped with).
///
/// kube-lease-manager reports a loss only once a renewal reads another holder: while renewals
/// fail (the API server slow or unreachable) it goes on reporting leadership, and a standby
/// takes the Lease as soon as it expires. So the leader reads its Lease six times per Lease
/// (a GET the install bundle's Role already allows) and steps down a margin before the expiry
/// of the last renewal it read, as client-go's renew deadline does.
async fn lease_in_doubt(api: Api<Lease>, election: &LeaderElection, lease: Duration) -> String {
    let margin = step_down_margin(lease);
    let every = lease / 6;
    // Leadership was just reported: the manager acquired or renewed the Lease about now, or (a
    // restart with the same identity, the Lease still naming it) renews it at once. So the
    // first Lease from now stands even if a read still shows the renewal from before.
    let first = instant_after(lease.saturating_sub(margin));
    let mut deadline = first;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let read = async {
            ticks.tick().await;
            tokio::time::timeout(every, api.get_opt(&election.lease_name)).await
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                return format!("not renewed in time: stepped down {margin:?} before the Lease ran out");
            }
            result = read => match result {
                Ok(Ok(Some(object))) => {
                    let spec = object.spec.unwrap_or_default();
                    if spec.holder_identity.as_deref() != Some(election.identity.as_str()) {
                        return format!("held by {:?}", spec.holder_identity.unwrap_or_default());
                    }
                    if let (Some(renewed), Some(secs)) = (spec.renew_time, spec.lease_duration_seconds) {
                        let now = chrono::Utc::now().timestamp_millis();
                        deadline = instant_after(time_left(renewed.0.as_millisecond(), secs, now, margin)).max(first);
                    }
                }
                Ok(Ok(None)) => return "the Lease was deleted".to_string(),
                // The deadline stands; the next read may still confirm a renewal.
                Ok(Err(error)) => {
                    tracing::warn!(lease = %election.lease_name, %error, "reading the Lease failed");
                }
                Err(_) => {
                    tracing::warn!(lease = %election.lease_name, "reading the Lease timed out after {every:?}");
                }
            },
        }
    }
}

/// Why the lease manager reported the Lease lost: who holds it now, as a read shows.
async fn holder(api: &Api<Lease>, election: &LeaderElection) -> String {
    let read = tokio::time::timeout(Duration::from_secs(5), api.get_opt(&election.lease_name));
    match read.await {
        Ok(Ok(Some(object))) => format!(
            "held by {:?}",
            object
                .spec
                .and_then(|s| s.holder_identity)
                .unwrap_or_default()
        ),
        Ok(Ok(None)) => "the Lease was deleted".to_string(),
        _ => "the lease manager reports another holder".to_string(),
    }
}

/// `d` from now; a duration past what the clock can hold is a year (a Lease that long is
/// never in doubt on time alone).
fn instant_after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// How long before its Lease runs out a leader that has not renewed steps down: a sixth of the
/// Lease, at most a second (clock skew between replicas and the time to stop acting). Renewals
/// come at half-life and are read every sixth, so a healthy leader is far from it.
fn step_down_margin(lease: Duration) -> Duration {
    (lease / 6).min(Duration::from_secs(1))
}

/// Time until a leader renewed at `renewed_ms` (Unix milliseconds) for `lease_secs` must step
/// down, `margin` before the Lease runs out; zero once that moment has passed, and never more
/// than one Lease from now (a renewal stamped ahead of this clock proves no more).
fn time_left(renewed_ms: i64, lease_secs: i32, now_ms: i64, margin: Duration) -> Duration {
    let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
    let lease_ms = i64::from(lease_secs.max(0)) * 1000;
    let left = renewed_ms
        .saturating_add(lease_ms)
        .saturating_sub(now_ms)
        .min(lease_ms)
        .saturating_sub(margin_ms);
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_steps_down_a_margin_before_its_last_renewal_runs_out() {
        let margin = step_down_margin(Duration::from_secs(15));
        assert_eq!(margin, Duration::from_secs(1));
        assert_eq!(
            step_down_margin(Duration::from_secs(3)),
            Duration::from_millis(500)
        );
        // Renewed at t = 100 s for 15 s: at t = 107.5 s, 6.5 s are left before 114 s.
        assert_eq!(
            time_left(100_000, 15, 107_500, margin),
            Duration::from_millis(6_500)
        );
        // Past the step-down moment, or a renewal stamped far in the past: step down now.
        assert_eq!(time_left(100_000, 15, 114_001, margin), Duration::ZERO);
        assert_eq!(time_left(i64::MIN, 15, 0, margin), Duration::ZERO);
        // A renewal stamped ahead of this clock gives one Lease at most; odd stamps and
        // durations neither overflow nor panic.
        assert_eq!(
            time_left(200_000, 15, 100_000, margin),
            Duration::from_secs(14)
        );
        assert_eq!(
            time_left(i64::MAX, i32::MAX, 0, margin),
            Duration::from_millis(i64::from(i32::MAX) as u64 * 1000 - 1_000)
        );
        assert_eq!(time_left(100_000, -5, 0, margin), Duration::ZERO);
    }
}
