//! The metrics configuration: the ConfigMap `iter8config-metrics`, read from the operator's
//! namespace, or from the experiment's namespace when the operator's has none. Read from
//! reflector stores watching only that ConfigMap's name; each version of a ConfigMap is parsed
//! once (parsing its YAML on every reconcile would cost more than the rest of the reconcile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iter8_core::MetricsConfig;
use iter8_core::metrics_config::CONFIGMAP_NAME;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::error::KubeError;

/// Reads the metrics ConfigMap.
#[derive(Clone)]
pub struct MetricsConfigSource {
    /// Stores of the ConfigMaps named `iter8config-metrics` (one per watched scope).
    stores: Vec<Store<ConfigMap>>,
    namespace: String,
    /// The last configuration parsed per namespace, with the `resourceVersion` it came from.
    parsed: Arc<Mutex<HashMap<String, (String, MetricsConfig)>>>,
}

impl MetricsConfigSource {
    /// A source over `stores`, looking in `namespace` first (the operator's, `iter8` by
    /// default).
    pub fn new(stores: Vec<Store<ConfigMap>>, namespace: impl Into<String>) -> MetricsConfigSource {
        MetricsConfigSource {
            stores,
            namespace: namespace.into(),
            parsed: Arc::default(),
        }
    }

    /// The configuration for an experiment in `experiment_namespace`.
    pub fn load(&self, experiment_namespace: &str) -> Result<MetricsConfig, KubeError> {
        let mut looked = Vec::new();
        for ns in [self.namespace.as_str(), experiment_namespace] {
            if looked.contains(&ns) {
                continue;
            }
            looked.push(ns);
            let key = ObjectRef::new(CONFIGMAP_NAME).within(ns);
            if let Some(cm) = self.stores.iter().find_map(|s| s.get(&key)) {
                return self.parse(ns, &cm);
            }
        }
        Err(KubeError::MetricsConfig(format!(
            "ConfigMap {CONFIGMAP_NAME} not found in namespace {}",
            looked.join(" or ")
        )))
    }

    /// The configuration in `cm`, parsed once per `resourceVersion`.
    fn parse(&self, ns: &str, cm: &ConfigMap) -> Result<MetricsConfig, KubeError> {
        let version = cm.resource_version().unwrap_or_default();
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, config)) = parsed.get(ns)
            && *seen == version
            && !version.is_empty()
        {
            return Ok(config.clone());
        }
        let config =
            MetricsConfig::from_data(&cm.data.clone().unwrap_or_default()).map_err(|e| {
                KubeError::MetricsConfig(format!("ConfigMap {ns}/{CONFIGMAP_NAME}: {e}"))
            })?;
        parsed.insert(ns.to_string(), (version, config.clone()));
        Ok(config)
    }
}
