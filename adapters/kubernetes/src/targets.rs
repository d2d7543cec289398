//! [`TargetLocator`] over the Kubernetes API: the Service and the two Deployments (or, for
//! `kind: Service`, the two Services), whether another running experiment already works on
//! them (all read from the controller's reflector stores), and deleting the loser on
//! `cleanup: delete`.

use async_trait::async_trait;
use iter8_core::model::{Experiment, Phase, TargetKind};
use iter8_core::observation::{ClaimedTarget, Targets};
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
    /// The namespace the stores hold (`None`: every namespace).
    watched: Option<String>,
    experiments: Store<ExperimentResource>,
    deployments: Store<Deployment>,
    services: Store<Service>,
}

impl KubeTargets {
    /// A locator reading from the stores, which hold the namespace `watched` (`None`: all),
    /// and deleting through `client`.
    pub fn new(
        client: Client,
        watched: Option<String>,
        experiments: Store<ExperimentResource>,
        deployments: Store<Deployment>,
        services: Store<Service>,
    ) -> KubeTargets {
        KubeTargets {
            client,
            watched,
            experiments,
            deployments,
            services,
        }
    }

    /// Whether `name` exists in `namespace`: from the store when it holds that namespace,
    /// otherwise (a cross-namespace target of a namespaced operator) read with a GET.
    async fn exists<K>(
        &self,
        store: &Store<K>,
        namespace: &str,
        name: &str,
    ) -> Result<bool, KubeError>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + 'static,
    {
        if name.is_empty() {
            return Ok(false);
        }
        if self.watched.as_deref().is_none_or(|w| w == namespace) {
            return Ok(store.get(&ObjectRef::new(name).within(namespace)).is_some());
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map(|o| o.is_some())
            .map_err(|e| KubeError::api("get", K::kind(&()), namespace, name, e))
    }

    /// Which targets exist and who else claims them.
    pub async fn find(&self, exp: &Experiment) -> Result<Targets, KubeError> {
        let ns = exp.target_namespace();
        let ts = &exp.spec.target_service;
        let service = match ts.name.as_deref() {
            Some(name) if !name.is_empty() => self.exists(&self.services, ns, name).await?,
            _ => true,
        };
        let (baseline, candidate) = match ts.kind() {
            TargetKind::Service => (
                self.exists(&self.services, ns, ts.baseline()).await?,
                self.exists(&self.services, ns, ts.candidate()).await?,
            ),
            _ => (
                self.exists(&self.deployments, ns, ts.baseline()).await?,
                self.exists(&self.deployments, ns, ts.candidate()).await?,
            ),
        };
        let claim = self.claimed_by(exp);
        Ok(Targets {
            service,
            baseline,
            candidate,
            claimed_target: claim.as_ref().map(|(_, target)| *target),
            claimed_by: claim.map(|(by, _)| by),
        })
    }

    /// Another experiment of the same namespace that has started, has not completed and is not
    /// being deleted, on the same target namespace and sharing the service or a version: its
    /// `name.namespace` and which of our targets it shares (the service first, as v0.2.1 checks).
    /// Experiments that have not started yet claim nothing, so two waiting ones never block
    /// each other. Read from the Experiment store, which holds the experiment's namespace.
    pub fn claimed_by(&self, exp: &Experiment) -> Option<(String, ClaimedTarget)> {
        let mine = &exp.spec.target_service;
        let mine_names: Vec<&str> = [
            mine.name.as_deref(),
            mine.baseline.as_deref(),
            mine.candidate.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect();
        self.experiments
            .state()
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(exp.namespace()))
            .filter(|o| o.name_any() != exp.name() && o.metadata.deletion_timestamp.is_none())
            // A cheap look at the raw spec first: converting every experiment of a large
            // namespace on each reconcile would cost more than the rest of the reconcile.
            .filter(|o| {
                ["name", "baseline", "candidate"]
                    .iter()
                    .filter_map(|f| crd::target_field(o, f))
                    .any(|theirs| mine_names.contains(&theirs))
            })
            .filter_map(|o| crd::to_core(o).ok())
            .filter(|o| {
                o.status.start_timestamp.is_some()
                    && o.status.phase != Some(Phase::Completed)
                    && o.target_namespace() == exp.target_namespace()
            })
            .find_map(|o| {
                let theirs = &o.spec.target_service;
                let versions = [theirs.baseline(), theirs.candidate()];
                let shared = if same(mine.name.as_deref(), theirs.name.as_deref()) {
                    ClaimedTarget::Service
                } else if versions
                    .iter()
                    .any(|v| same(Some(mine.baseline()), Some(v)))
                {
                    ClaimedTarget::Baseline
                } else if versions
                    .iter()
                    .any(|v| same(Some(mine.candidate()), Some(v)))
                {
                    ClaimedTarget::Candidate
                } else {
                    return None;
                };
                Some((format!("{}.{}", o.name(), o.namespace()), shared))
            })
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

/// Both names are set and equal (an unset name shares nothing).
fn same(a: Option<&str>, b: Option<&str>) -> bool {
    a.is_some_and(|a| !a.is_empty() && Some(a) == b)
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
