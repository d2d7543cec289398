//! The metrics configuration: the ConfigMap `iter8config-metrics`, read from the operator's
//! namespace, or from the experiment's namespace when the operator's has none. Read from
//! reflector stores watching only that ConfigMap's name.

use iter8_core::MetricsConfig;
use iter8_core::metrics_config::CONFIGMAP_NAME;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::error::KubeError;

/// Reads the metrics ConfigMap.
#[derive(Clone)]
pub struct MetricsConfigSource {
    /// Stores of the ConfigMaps named `iter8config-metrics` (one per watched scope).
    stores: Vec<Store<ConfigMap>>,
    namespace: String,
}

impl MetricsConfigSource {
    /// A source over `stores`, looking in `namespace` first (the operator's, `iter8` by
    /// default).
    pub fn new(stores: Vec<Store<ConfigMap>>, namespace: impl Into<String>) -> MetricsConfigSource {
        MetricsConfigSource {
            stores,
            namespace: namespace.into(),
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
                let data = cm.data.clone().unwrap_or_default();
                return MetricsConfig::from_data(&data).map_err(|e| {
                    KubeError::MetricsConfig(format!("ConfigMap {ns}/{CONFIGMAP_NAME}: {e}"))
                });
            }
        }
        Err(KubeError::MetricsConfig(format!(
            "ConfigMap {CONFIGMAP_NAME} not found in namespace {}",
            looked.join(" or ")
        )))
    }
}
