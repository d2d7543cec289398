//! Envoy's bootstrap: one HTTP listener on 127.0.0.1 whose routes (RDS) and clusters (CDS) come
//! from files in a watched directory, and an admin endpoint on 127.0.0.1.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Where the files of one Envoy live and which ports it uses (all on 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyLayout {
    /// The directory holding the bootstrap, `rds.json` and `cds.json` (watched by Envoy).
    pub dir: PathBuf,
    /// The admin port (`/config_dump`, `/stats/prometheus`, `/ready`).
    pub admin_port: u16,
    /// The port of the HTTP listener that routes to the versions.
    pub listener_port: u16,
    /// The name of the route configuration (and of the service), e.g. `reviews`.
    pub route_name: String,
}

/// The stats prefix of the listener's HTTP connection manager.
pub const STAT_PREFIX: &str = "iter8";

impl EnvoyLayout {
    /// The directory Envoy watches for the routes and clusters files.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("xds")
    }

    /// The route configuration file (RDS).
    pub fn rds_path(&self) -> PathBuf {
        self.config_dir().join("rds.json")
    }

    /// The clusters file (CDS).
    pub fn cds_path(&self) -> PathBuf {
        self.config_dir().join("cds.json")
    }

    /// The bootstrap file.
    pub fn bootstrap_path(&self) -> PathBuf {
        self.dir.join("envoy.json")
    }

    /// The admin API's base URL.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The routed service's base URL.
    pub fn listener_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listener_port)
    }

    /// The bootstrap document.
    pub fn bootstrap(&self) -> Value {
        let watched = |path: &Path| {
            json!({
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": path.display().to_string(),
                    "watched_directory": {"path": self.config_dir().display().to_string()}
                }
            })
        };
        json!({
            "node": {"id": "iter8-live", "cluster": "iter8-live"},
            // Histograms reach /stats/prometheus at each flush: keep them fresh for short intervals.
            "stats_flush_interval": "1s",
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            "dynamic_resources": {"cds_config": watched(&self.cds_path())},
            "static_resources": {"listeners": [{
                "name": self.route_name,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.listener_port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": STAT_PREFIX,
                        "rds": {
                            "route_config_name": self.route_name,
                            "config_source": watched(&self.rds_path())
                        },
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                        }]
                    }
                }]}]
            }]}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_listens_on_loopback_and_watches_the_xds_directory() {
        let layout = EnvoyLayout {
            dir: PathBuf::from("/tmp/x"),
            admin_port: 1,
            listener_port: 2,
            route_name: "reviews".into(),
        };
        let b = layout.bootstrap();
        let text = b.to_string();
        assert!(!text.contains("0.0.0.0"));
        assert_eq!(
            b["admin"]["address"]["socket_address"]["address"],
            "127.0.0.1"
        );
        let rds = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["rds"];
        assert_eq!(rds["route_config_name"], "reviews");
        assert_eq!(
            rds["config_source"]["path_config_source"]["watched_directory"]["path"],
            "/tmp/x/xds"
        );
    }
}
