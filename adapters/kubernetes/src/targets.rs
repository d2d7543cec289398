//! [`TargetLocator`] over the Kubernetes API: the Service and the two Deployments (or, for
//! `kind: Service`, the two Services), whether another running experiment already works on
//! them (all read from the controller's reflector stores), and deleting the loser on
//! `cleanup: delete`.

use async_trait::async_trait;
use iter8_core::model::{Experiment, Phase, TargetKind};
use iter8_core::observation::Targets;
use iter8_core::ports::{PortError, TargetLocator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};

use crate::crd::{self, ExperimentResource};
use crate::error::{KubeError, is_not_found};

/// Finds experiments' targets in the cluster.
#[derive(Clone)]
pub struct KubeTargets {
    client: Client,
    experiments: Store<ExperimentResource>,
    deployments: Store<Deployment>,
    services: Store<Service>,
}

impl KubeTargets {
    /// A locator reading from the stores and deleting through `client`.
    pub fn new(
        client: Client,
        experiments: Store<ExperimentResource>,
        deployments: Store<Deployment>,
        services: Store<Service>,
    ) -> KubeTargets {
        KubeTargets {
            client,
            experiments,
            deployments,
            services,
        }
    }

    fn exists<K>(store: &Store<K>, namespace: &str, name: &str) -> bool
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        !name.is_empty() && store.get(&ObjectRef::new(name).within(namespace)).is_some()
    }

    /// Which targets exist and who else claims them.
    pub async fn find(&self, exp: &Experiment) -> Result<Targets, KubeError> {
        let ns = exp.target_namespace();
        let ts = &exp.spec.target_service;
        let service = match ts.name.as_deref() {
            Some(name) if !name.is_empty() => Self::exists(&self.services, ns, name),
            _ => true,
        };
        let (baseline, candidate) = match ts.kind() {
            TargetKind::Service => (
                Self::exists(&self.services, ns, ts.baseline()),
                Self::exists(&self.services, ns, ts.candidate()),
            ),
            _ => (
                Self::exists(&self.deployments, ns, ts.baseline()),
                Self::exists(&self.deployments, ns, ts.candidate()),
            ),
        };
        Ok(Targets {
            service,
            baseline,
            candidate,
            claimed_by: self.claimed_by(exp),
        })
    }

    /// Another experiment of the same namespace that has started, has not completed and is not
    /// being deleted, on the same target namespace with the same service, baseline or candidate.
    pub fn claimed_by(&self, exp: &Experiment) -> Option<String> {
        let others = self.experiments.state();
        let mine = &exp.spec.target_service;
        let same =
            |a: Option<&str>, b: Option<&str>| a.is_some_and(|a| !a.is_empty() && Some(a) == b);
        others
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(exp.namespace()))
            .filter(|o| o.name_any() != exp.name() && o.metadata.deletion_timestamp.is_none())
            .filter_map(|o| crd::to_core(o).ok())
            .find(|o| {
                let theirs = &o.spec.target_service;
                o.status.start_timestamp.is_some()
                    && o.status.phase != Some(Phase::Completed)
                    && o.target_namespace() == exp.target_namespace()
                    && (same(mine.name.as_deref(), theirs.name.as_deref())
                        || same(mine.baseline.as_deref(), theirs.baseline.as_deref())
                        || same(mine.candidate.as_deref(), theirs.candidate.as_deref()))
            })
            .map(|o| format!("{}.{}", o.name(), o.namespace()))
    }

    /// Deletes a version (a Deployment, or a Service for `kind: Service`); already gone is fine.
    pub async fn delete(&self, exp: &Experiment, name: &str) -> Result<(), KubeError> {
        let ns = exp.target_namespace();
        let params = DeleteParams::default();
        let (kind, result) = match exp.spec.target_service.kind() {
            TargetKind::Service => (
                "Service",
                Api::<Service>::namespaced(self.client.clone(), ns)
                    .delete(name, &params)
                    .await
                    .map(|_| ()),
            ),
            _ => (
                "Deployment",
                Api::<Deployment>::namespaced(self.client.clone(), ns)
                    .delete(name, &params)
                    .await
                    .map(|_| ()),
            ),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(KubeError::api("delete", kind, ns, name, e)),
        }
    }
}

#[async_trait]
impl TargetLocator for KubeTargets {
    async fn locate(&self, experiment: &Experiment) -> Result<Targets, PortError> {
        Ok(self.find(experiment).await?)
    }

    async fn delete_target(&self, experiment: &Experiment, name: &str) -> Result<(), PortError> {
        Ok(self.delete(experiment, name).await?)
    }
}
