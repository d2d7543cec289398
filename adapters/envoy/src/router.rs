//! The core's [`TrafficRouter`] for a standalone Envoy: weights are written to the watched RDS
//! file (temp file, then rename), and a change counts as applied only once Envoy's admin API
//! reports the new `version_info`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::{Experiment, TrafficSplit};
use iter8_core::observation::RoutingObservation;
use iter8_core::ports::{PortError, TrafficRouter};

use crate::admin::EnvoyAdmin;
use crate::bootstrap::EnvoyLayout;
use crate::error::EnvoyError;
use crate::routes::{
    RouteState, clusters_document, read_route_file, route_document, write_atomically,
};

/// Roles of the routes, as iter8's `iter8-tools/role` label.
pub mod role {
    /// Baseline 100, candidate added at 0.
    pub const INITIALIZING: &str = "initializing";
    /// Split between baseline and candidate.
    pub const PROGRESSING: &str = "progressing";
    /// Settled: free for the next experiment.
    pub const STABLE: &str = "stable";
}

/// How long to wait for Envoy to report a written configuration.
pub const DEFAULT_CONFIRM_WITHIN: Duration = Duration::from_secs(5);

struct Written {
    routes: u64,
    clusters: u64,
    backends: Vec<(String, SocketAddr)>,
}

/// Routes one service's traffic between its versions through a standalone Envoy.
pub struct EnvoyRouter {
    layout: EnvoyLayout,
    admin: EnvoyAdmin,
    written: Mutex<Written>,
    confirm_within: Duration,
}

/// The owner label of an experiment's routes: `name.namespace`.
pub fn owner_of(experiment: &Experiment) -> String {
    format!("{}.{}", experiment.name(), experiment.namespace())
}

fn port_error(e: EnvoyError) -> PortError {
    PortError::new(e.to_string())
}

impl EnvoyRouter {
    /// A router over the files of `layout`; continues the version numbers of files already there.
    pub fn new(layout: EnvoyLayout) -> Result<Self, EnvoyError> {
        let admin = EnvoyAdmin::new(layout.admin_url())?;
        let routes = read_route_file(&layout.rds_path()).map_or(0, |r| r.version);
        Ok(EnvoyRouter {
            layout,
            admin,
            written: Mutex::new(Written {
                routes,
                clusters: 0,
                backends: Vec::new(),
            }),
            confirm_within: DEFAULT_CONFIRM_WITHIN,
        })
    }

    /// Waits at most this long for Envoy to confirm each change.
    pub fn with_confirm_within(mut self, limit: Duration) -> Self {
        self.confirm_within = limit;
        self
    }

    /// The admin API client.
    pub fn admin(&self) -> &EnvoyAdmin {
        &self.admin
    }

    /// The files and ports.
    pub fn layout(&self) -> &EnvoyLayout {
        &self.layout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Written> {
        // A poisoned lock only means another thread panicked while writing a number: go on.
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the first configuration before Envoy starts: clusters for `backends` and a free
    /// stable route sending everything to `serving`.
    pub fn write_initial(
        &self,
        backends: &[(String, SocketAddr)],
        serving: &str,
    ) -> Result<(), EnvoyError> {
        std::fs::create_dir_all(self.layout.config_dir()).map_err(|source| EnvoyError::Write {
            path: self.layout.config_dir(),
            source,
        })?;
        let (clusters, routes) = {
            let mut w = self.lock();
            w.clusters += 1;
            w.routes += 1;
            w.backends = backends.to_vec();
            (w.clusters, w.routes)
        };
        write_atomically(
            &self.layout.cds_path(),
            &clusters_document(clusters, backends),
        )?;
        let state = RouteState {
            version: routes,
            weights: vec![(serving.to_string(), 100)],
            owner: None,
            role: role::STABLE.to_string(),
        };
        write_atomically(
            &self.layout.rds_path(),
            &route_document(&self.layout.route_name, &state),
        )
    }

    /// Adds (or moves) a version's backend and waits until Envoy has its cluster.
    pub async fn add_backend(&self, name: &str, addr: SocketAddr) -> Result<(), EnvoyError> {
        let (version, backends) = {
            let mut w = self.lock();
            w.backends.retain(|(n, _)| n != name);
            w.backends.push((name.to_string(), addr));
            w.clusters += 1;
            (w.clusters, w.backends.clone())
        };
        write_atomically(
            &self.layout.cds_path(),
            &clusters_document(version, &backends),
        )?;
        let started = Instant::now();
        loop {
            let seen = self.admin.clusters().await;
            if let Ok(names) = &seen
                && names.iter().any(|n| n == name)
            {
                return Ok(());
            }
            if started.elapsed() >= self.confirm_within {
                return Err(EnvoyError::NotConfirmed {
                    what: "clusters",
                    expected: version.to_string(),
                    seen: match seen {
                        Ok(names) => format!("clusters {names:?}"),
                        Err(e) => e.to_string(),
                    },
                    after: self.confirm_within,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether Envoy has a cluster (backend) for `name`.
    fn knows(&self, name: &str) -> bool {
        self.lock().backends.iter().any(|(n, _)| n == name)
    }

    /// Writes a route state with the next version and waits until Envoy reports it.
    pub async fn write_routes(
        &self,
        weights: Vec<(String, u32)>,
        owner: Option<String>,
        role: &str,
    ) -> Result<RouteState, EnvoyError> {
        let version = {
            let mut w = self.lock();
            w.routes += 1;
            w.routes
        };
        let state = RouteState {
            version,
            weights,
            owner,
            role: role.to_string(),
        };
        write_atomically(
            &self.layout.rds_path(),
            &route_document(&self.layout.route_name, &state),
        )?;
        self.confirm(&state).await?;
        Ok(state)
    }

    async fn confirm(&self, state: &RouteState) -> Result<(), EnvoyError> {
        let started = Instant::now();
        loop {
            let seen = self.admin.route(&self.layout.route_name).await;
            if let Ok(Some(route)) = &seen
                && route.version == state.version
            {
                return Ok(());
            }
            if started.elapsed() >= self.confirm_within {
                return Err(EnvoyError::NotConfirmed {
                    what: "routes",
                    expected: state.version.to_string(),
                    seen: match seen {
                        Ok(Some(route)) => format!("version {}", route.version),
                        Ok(None) => "no routes".to_string(),
                        Err(e) => e.to_string(),
                    },
                    after: self.confirm_within,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The routes Envoy serves now.
    pub async fn served_routes(&self) -> Result<Option<RouteState>, EnvoyError> {
        self.admin.route(&self.layout.route_name).await
    }
}

#[async_trait]
impl TrafficRouter for EnvoyRouter {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        let route = self.served_routes().await.map_err(port_error)?;
        let me = owner_of(experiment);
        Ok(match route {
            Some(r) if r.owner.as_deref() == Some(me.as_str()) => {
                let target = &experiment.spec.target_service;
                RoutingObservation {
                    split: Some(TrafficSplit {
                        baseline: r.weight_of(target.baseline()),
                        candidate: r.weight_of(target.candidate()),
                    }),
                    held_by: None,
                    ..Default::default()
                }
            }
            Some(r) if r.role != role::STABLE => RoutingObservation {
                split: None,
                held_by: r.owner,
                ..Default::default()
            },
            // No routes yet, or stable routes: free for this experiment.
            _ => RoutingObservation::default(),
        })
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        let target = &experiment.spec.target_service;
        let (b, c) = (
            target.baseline().to_string(),
            target.candidate().to_string(),
        );
        let (weights, role) = match *action {
            // Before the candidate is deployed: the baseline alone (v0.2.1's initializing rules).
            RoutingAction::Initialize if !self.knows(&c) => (vec![(b, 100)], role::INITIALIZING),
            RoutingAction::Initialize => (vec![(b, 100), (c, 0)], role::INITIALIZING),
            RoutingAction::SetSplit(s) => {
                (vec![(b, s.baseline), (c, s.candidate)], role::PROGRESSING)
            }
            RoutingAction::Finalize { winner, split } => {
                let weights = match winner {
                    Winner::Baseline => vec![(b, 100)],
                    Winner::Candidate => vec![(c, 100)],
                    Winner::Both => vec![(b, split.baseline), (c, split.candidate)],
                };
                (weights, role::STABLE)
            }
        };
        if let Some((unknown, _)) = weights.iter().find(|(version, _)| !self.knows(version)) {
            return Err(port_error(EnvoyError::UnknownVersion(unknown.clone())));
        }
        self.write_routes(weights, Some(owner_of(experiment)), role)
            .await
            .map(|_| ())
            .map_err(port_error)
    }
}
