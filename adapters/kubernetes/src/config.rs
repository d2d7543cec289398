//! The metrics configuration: the ConfigMap `iter8config-metrics`, read from the operator's
//! namespace, or from the experiment's namespace when the operator's has none.

use iter8_core::MetricsConfig;
use iter8_core::metrics_config::CONFIGMAP_NAME;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;

use crate::error::KubeError;

/// Reads the metrics ConfigMap.
#[derive(Clone)]
pub struct MetricsConfigSource {
    client: Client,
    namespace: String,
}

impl MetricsConfigSource {
    /// A source looking in `namespace` first (the operator's, `iter8` by default).
    pub fn new(client: Client, namespace: impl Into<String>) -> MetricsConfigSource {
        MetricsConfigSource {
            client,
            namespace: namespace.into(),
        }
    }

    /// The configuration for an experiment in `experiment_namespace`.
    pub async fn load(&self, experiment_namespace: &str) -> Result<MetricsConfig, KubeError> {
        let mut looked = Vec::new();
        for ns in [self.namespace.as_str(), experiment_namespace] {
            if looked.contains(&ns) {
                continue;
            }
            looked.push(ns);
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
            let found = api
                .get_opt(CONFIGMAP_NAME)
                .await
                .map_err(|e| KubeError::api("get", "ConfigMap", ns, CONFIGMAP_NAME, e))?;
            if let Some(cm) = found {
                let data = cm.data.unwrap_or_default();
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
