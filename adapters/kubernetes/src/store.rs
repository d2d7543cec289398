//! [`ExperimentStore`] over the Kubernetes API: the status through the status subresource
//! (JSON merge patch computed from the status read), iter8's finalizer through a JSON merge
//! patch of `metadata.finalizers` guarded by `resourceVersion` (retried on 409).

use async_trait::async_trait;
use iter8_core::model::{Experiment, ExperimentStatus, FINALIZER};
use iter8_core::ports::{ExperimentStore, PortError};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::crd::ExperimentResource;
use crate::error::{KubeError, is_not_found};
use crate::merge_patch;

/// The field manager iter8 writes as.
pub const FIELD_MANAGER: &str = "iter8";
/// How often a finalizer change is retried after a 409 Conflict.
const CONFLICT_RETRIES: usize = 5;

/// Persists experiments' status and finalizer in the cluster.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
}

impl KubeStore {
    /// A store talking to the cluster through `client`.
    pub fn new(client: Client) -> KubeStore {
        KubeStore { client }
    }

    fn api(&self, exp: &Experiment) -> Api<ExperimentResource> {
        Api::namespaced(self.client.clone(), exp.namespace())
    }

    /// Writes `status` over `old` (the status as read), sending only what changed.
    pub async fn patch_status(
        &self,
        exp: &Experiment,
        old: &ExperimentStatus,
        status: &ExperimentStatus,
    ) -> Result<(), KubeError> {
        let encode = |s: &ExperimentStatus| {
            serde_json::to_value(s).map_err(|e| KubeError::Json {
                what: format!("the status of experiment {}", exp.name()),
                message: e.to_string(),
            })
        };
        let patch = json!({ "status": merge_patch::diff(&encode(old)?, &encode(status)?) });
        self.api(exp)
            .patch_status(exp.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                KubeError::api(
                    "patch status of",
                    "Experiment",
                    exp.namespace(),
                    exp.name(),
                    e,
                )
            })?;
        Ok(())
    }

    /// Adds (`true`) or removes (`false`) iter8's finalizer, re-reading on conflicts. A missing
    /// experiment has no finalizer to remove.
    async fn set_finalizer(&self, exp: &Experiment, present: bool) -> Result<(), KubeError> {
        let api = self.api(exp);
        let (ns, name) = (exp.namespace(), exp.name());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = match api.get(name).await {
                Ok(c) => c,
                Err(e) if is_not_found(&e) && !present => return Ok(()),
                Err(e) => return Err(KubeError::api("get", "Experiment", ns, name, e)),
            };
            let mut finalizers = current.metadata.finalizers.clone().unwrap_or_default();
            let has = finalizers.iter().any(|f| f == FINALIZER);
            if has == present {
                return Ok(());
            }
            if present {
                finalizers.push(FINALIZER.to_string());
            } else {
                finalizers.retain(|f| f != FINALIZER);
            }
            let patch = json!({
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": current.metadata.resource_version,
                }
            });
            let verb = if present {
                "add finalizer to"
            } else {
                "remove finalizer from"
            };
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) && !present => return Ok(()),
                Err(e) => {
                    let err = KubeError::api(verb, "Experiment", ns, name, e);
                    if !(err.is_conflict() && attempt < CONFLICT_RETRIES) {
                        return Err(err);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl ExperimentStore for KubeStore {
    async fn write_status(
        &self,
        experiment: &Experiment,
        status: &ExperimentStatus,
    ) -> Result<(), PortError> {
        Ok(self
            .patch_status(experiment, &experiment.status, status)
            .await?)
    }

    async fn add_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        Ok(self.set_finalizer(experiment, true).await?)
    }

    async fn remove_finalizer(&self, experiment: &Experiment) -> Result<(), PortError> {
        Ok(self.set_finalizer(experiment, false).await?)
    }
}
