//! The documents Envoy loads from the watched directory (routes and clusters), written
//! atomically, and how routes read back from `/config_dump` are understood.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::error::EnvoyError;

/// The filter-metadata namespace iter8 keeps its ownership labels in, on the route.
pub const METADATA_NAMESPACE: &str = "iter8";

/// What the routes say: the weighted versions, the version of the file, and who owns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteState {
    /// The `version_info` of the document (confirmed through the admin API).
    pub version: u64,
    /// `(cluster = version name, weight)`, in order.
    pub weights: Vec<(String, u32)>,
    /// The experiment (`name.namespace`) that owns the routes, if any.
    pub owner: Option<String>,
    /// `initializing`, `progressing` or `stable` (iter8's `iter8-tools/role`).
    pub role: String,
}

impl RouteState {
    /// The weight of a version (0 when it is not routed to).
    pub fn weight_of(&self, version: &str) -> u32 {
        self.weights
            .iter()
            .filter(|(name, _)| name == version)
            .map(|(_, w)| *w)
            .sum()
    }
}

/// The RDS file: one virtual host matching every domain, one route splitting by weight.
pub fn route_document(route_name: &str, state: &RouteState) -> Value {
    let clusters: Vec<Value> = state
        .weights
        .iter()
        .map(|(name, weight)| json!({"name": name, "weight": weight}))
        .collect();
    let mut labels = serde_json::Map::new();
    labels.insert("role".into(), json!(state.role));
    if let Some(owner) = &state.owner {
        labels.insert("experiment".into(), json!(owner));
    }
    json!({
        "version_info": state.version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": route_name,
            "virtual_hosts": [{
                "name": route_name,
                "domains": ["*"],
                "routes": [{
                    "match": {"prefix": "/"},
                    "metadata": {"filter_metadata": {METADATA_NAMESPACE: labels}},
                    "route": {"weighted_clusters": {"clusters": clusters}}
                }]
            }]
        }]
    })
}

/// The CDS file: one static cluster per version, each with its one 127.0.0.1 endpoint.
pub fn clusters_document(version: u64, backends: &[(String, SocketAddr)]) -> Value {
    let clusters: Vec<Value> = backends
        .iter()
        .map(|(name, addr)| {
            json!({
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": addr.ip().to_string(),
                        "port_value": addr.port()
                    }}}}]}]
                }
            })
        })
        .collect();
    json!({"version_info": version.to_string(), "resources": clusters})
}

/// Reads a route state back from an RDS document (the file) or from a `DynamicRouteConfig`
/// entry of `/config_dump` (`version_info` + `route_config`).
pub fn parse_route(doc: &Value) -> Option<RouteState> {
    let version = doc.get("version_info")?.as_str()?.parse().ok()?;
    let config = doc
        .get("route_config")
        .or_else(|| doc.get("resources").and_then(|r| r.get(0)))?;
    let route = config.pointer("/virtual_hosts/0/routes/0")?;
    let weights = route
        .pointer("/route/weighted_clusters/clusters")?
        .as_array()?
        .iter()
        .filter_map(|c| {
            let name = c.get("name")?.as_str()?.to_string();
            // Envoy leaves a zero weight out of the dump.
            let weight = c.get("weight").and_then(Value::as_u64).unwrap_or(0);
            Some((name, u32::try_from(weight).ok()?))
        })
        .collect();
    let labels = route.pointer(&format!("/metadata/filter_metadata/{METADATA_NAMESPACE}"));
    let label = |key: &str| {
        labels
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Some(RouteState {
        version,
        weights,
        owner: label("experiment"),
        role: label("role").unwrap_or_default(),
    })
}

/// Finds the route configuration `route_name` in a `/config_dump?resource=dynamic_route_configs`
/// answer.
pub fn find_route_in_dump(dump: &Value, route_name: &str) -> Option<RouteState> {
    dump.get("configs")?
        .as_array()?
        .iter()
        .find(|c| c.pointer("/route_config/name").and_then(Value::as_str) == Some(route_name))
        .and_then(parse_route)
}

/// The names of the clusters in a `/config_dump?resource=dynamic_active_clusters` answer.
pub fn cluster_names_in_dump(dump: &Value) -> Vec<String> {
    dump.get("configs")
        .and_then(Value::as_array)
        .map(|configs| {
            configs
                .iter()
                .filter_map(|c| c.pointer("/cluster/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `doc` to a temporary file beside `path`, then renames it over `path`: Envoy sees one
/// complete new file (a move into the watched directory), never a half-written one.
pub fn write_atomically(path: &Path, doc: &Value) -> Result<(), EnvoyError> {
    let io = |source| EnvoyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(doc).map_err(|e| io(std::io::Error::other(e)))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a route state from the RDS file, if there is a readable one.
pub fn read_route_file(path: &Path) -> Option<RouteState> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    parse_route(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RouteState {
        RouteState {
            version: 7,
            weights: vec![("reviews-v3".into(), 80), ("reviews-v4".into(), 20)],
            owner: Some("reviews-v4-rollout.bookinfo-iter8".into()),
            role: "progressing".into(),
        }
    }

    #[test]
    fn a_route_document_reads_back_as_written() {
        let doc = route_document("reviews", &state());
        assert_eq!(parse_route(&doc), Some(state()));
        assert_eq!(state().weight_of("reviews-v4"), 20);
        assert_eq!(state().weight_of("reviews-v9"), 0);
    }

    #[test]
    fn a_config_dump_entry_is_understood_with_zero_weights_left_out() {
        let dump = json!({"configs": [{
            "version_info": "3",
            "route_config": {"name": "reviews", "virtual_hosts": [{"routes": [{
                "route": {"weighted_clusters": {"clusters": [
                    {"name": "reviews-v2", "weight": 100}, {"name": "reviews-v3"}
                ]}}
            }]}]}
        }]});
        let route = find_route_in_dump(&dump, "reviews").unwrap();
        assert_eq!(route.version, 3);
        assert_eq!(route.weight_of("reviews-v3"), 0);
        assert_eq!(route.owner, None);
        assert!(find_route_in_dump(&dump, "ratings").is_none());
    }

    #[test]
    fn clusters_point_at_their_backends() {
        let doc = clusters_document(
            2,
            &[("reviews-v2".into(), "127.0.0.1:9081".parse().unwrap())],
        );
        assert_eq!(doc["version_info"], "2");
        assert_eq!(
            doc.pointer("/resources/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"),
            Some(&json!(9081))
        );
    }

    #[test]
    fn files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rds.json");
        write_atomically(&path, &route_document("reviews", &state())).unwrap();
        assert_eq!(read_route_file(&path), Some(state()));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }
}
