//! [`ExperimentStore`] over the Kubernetes API: the status through the status subresource
//! (JSON merge patch computed from the status read), iter8's finalizer through a JSON merge
//! patch of `metadata.finalizers` guarded by `resourceVersion` (retried on 409). It remembers
//! the `resourceVersion` each write produced, so that a reconcile can tell when the
//! controller's cache has not seen that write yet.
//!
//! Status writes are guarded by the `resourceVersion` the decision was made on: a status
//! written since (by another operator instance, say) makes the write fail with 409 Conflict,
//! and the reconcile is retried: read again, decide again. Only this store's own finalizer
//! change in the same reconcile does not count as a change. So a reconcile that acted on a
//! cache lagging behind someone else's write cannot record its decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iter8_core::model::{Experiment, ExperimentStatus, FINALIZER};
use iter8_core::ports::{ExperimentStore, PortError};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
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
    /// This store's own finalizer writes: `namespace/name` → (the version it changed, the
    /// version it made).
    own_writes: Arc<Mutex<HashMap<String, (String, String)>>>,
    /// `namespace/name` → the `resourceVersion` of this process's last write to it.
    written: Arc<Mutex<HashMap<String, String>>>,
}

impl KubeStore {
    /// A store talking to the cluster through `client`.
    pub fn new(client: Client) -> KubeStore {
        KubeStore {
            client,
            own_writes: Arc::default(),
            written: Arc::default(),
        }
    }

    /// The `resourceVersion` a status decided on `exp` must be written over: the one `exp` was
    /// read at, or the one this store's finalizer change made of it since.
    fn version_to_write_over(&self, exp: &Experiment) -> Option<String> {
        let read = exp.metadata.other.get("resourceVersion")?.as_str()?;
        let key = format!("{}/{}", exp.namespace(), exp.name());
        let own = self.own_writes.lock().ok()?.remove(&key);
        Some(match own {
            Some((from, to)) if from == read => to,
            _ => read.to_string(),
        })
    }

    fn remember(&self, written: &ExperimentResource) {
        let key = format!(
            "{}/{}",
            written.namespace().unwrap_or_default(),
            written.name_any()
        );
        if let Some(version) = written.resource_version() {
            self.written
                .lock()
                .expect("not poisoned")
                .insert(key, version);
        }
    }

    /// Whether `cached` may predate this process's last write to it: its `resourceVersion` is
    /// older than the one the write returned. kube-apiserver's versions are etcd revisions
    /// (integers); a version that is not one counts as possibly older.
    pub fn is_behind_own_write(&self, cached: &ExperimentResource) -> bool {
        let key = format!(
            "{}/{}",
            cached.namespace().unwrap_or_default(),
            cached.name_any()
        );
        let written = self.written.lock().expect("not poisoned");
        let Some(written) = written.get(&key) else {
            return false;
        };
        match (
            written.parse::<u64>(),
            cached.resource_version().map(|v| v.parse::<u64>()),
        ) {
            (Ok(written), Some(Ok(cached))) => cached < written,
            _ => cached.resource_version().as_ref() != Some(written),
        }
    }

    /// Forgets an experiment that is gone.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        self.written.lock().expect("not poisoned").remove(&key);
        self.own_writes.lock().expect("not poisoned").remove(&key);
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
        let mut patch = json!({ "status": merge_patch::diff(&encode(old)?, &encode(status)?) });
        if let Some(version) = self.version_to_write_over(exp) {
            patch["metadata"] = json!({ "resourceVersion": version });
        }
        let written = self
            .api(exp)
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
        self.remember(&written);
        Ok(())
    }

    /// Adds (`true`) or removes (`false`) iter8's finalizer: first over the experiment as
    /// read, re-reading on conflicts. A missing experiment has no finalizer to remove.
    async fn set_finalizer(&self, exp: &Experiment, present: bool) -> Result<(), KubeError> {
        let api = self.api(exp);
        let (ns, name) = (exp.namespace(), exp.name());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut finalizers, resource_version) = if attempt == 1 {
                (
                    exp.metadata.finalizers.clone(),
                    exp.metadata
                        .other
                        .get("resourceVersion")
                        .and_then(|v| v.as_str())
                        .map(String::from),
                )
            } else {
                match api.get(name).await {
                    Ok(c) => (
                        c.metadata.finalizers.clone().unwrap_or_default(),
                        c.metadata.resource_version.clone(),
                    ),
                    Err(e) if is_not_found(&e) && !present => return Ok(()),
                    Err(e) => return Err(KubeError::api("get", "Experiment", ns, name, e)),
                }
            };
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
                    "resourceVersion": resource_version,
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
                Ok(written) => {
                    if let (Some(from), Some(to), Ok(mut own)) = (
                        resource_version,
                        written.metadata.resource_version.clone(),
                        self.own_writes.lock(),
                    ) {
                        own.insert(format!("{ns}/{name}"), (from, to));
                    }
                    self.remember(&written);
                    return Ok(());
                }
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
