//! A client of Envoy's admin API: readiness, the loaded routes and clusters, and statistics.

use std::time::Duration;

use serde_json::Value;

use crate::error::EnvoyError;
use crate::routes::{RouteState, cluster_names_in_dump, find_route_in_dump};
use crate::stats::{CounterSnapshot, parse_cluster_counters};

/// The admin API of one Envoy (on 127.0.0.1).
#[derive(Debug, Clone)]
pub struct EnvoyAdmin {
    base: String,
    http: reqwest::Client,
}

impl EnvoyAdmin {
    /// A client for the admin API at `base` (e.g. `http://127.0.0.1:19000`).
    pub fn new(base: impl Into<String>) -> Result<Self, EnvoyError> {
        let base = base.into();
        // reqwest is built with `rustls-no-provider` in this workspace: a provider must be
        // installed before a client is built (Err: one already is).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| EnvoyError::Admin {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(EnvoyAdmin { base, http })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<String, EnvoyError> {
        let url = format!("{}{path}", self.base);
        let fail = |reason: String| EnvoyError::Admin {
            url: url.clone(),
            reason,
        };
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}: {}", body.trim())));
        }
        Ok(body)
    }

    async fn get_json(&self, path: &str) -> Result<Value, EnvoyError> {
        let body = self.get(path).await?;
        serde_json::from_str(&body).map_err(|e| EnvoyError::Admin {
            url: format!("{}{path}", self.base),
            reason: format!("not JSON: {e}"),
        })
    }

    /// Whether Envoy says it is live (`GET /ready` answers 200 `LIVE`).
    pub async fn ready(&self) -> bool {
        self.get("/ready")
            .await
            .is_ok_and(|body| body.trim() == "LIVE")
    }

    /// The route configuration `name` as Envoy has loaded it (`None`: none loaded yet).
    pub async fn route(&self, name: &str) -> Result<Option<RouteState>, EnvoyError> {
        let dump = self
            .get_json("/config_dump?resource=dynamic_route_configs")
            .await?;
        Ok(find_route_in_dump(&dump, name))
    }

    /// The names of the clusters Envoy has loaded from CDS.
    pub async fn clusters(&self) -> Result<Vec<String>, EnvoyError> {
        let dump = self
            .get_json("/config_dump?resource=dynamic_active_clusters")
            .await?;
        Ok(cluster_names_in_dump(&dump))
    }

    /// Per-cluster request and 5xx counters from `/stats/prometheus`.
    pub async fn cluster_counters(&self) -> Result<CounterSnapshot, EnvoyError> {
        let text = self.get("/stats/prometheus").await?;
        Ok(parse_cluster_counters(&text))
    }
}
