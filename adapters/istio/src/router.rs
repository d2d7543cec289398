//! The Kubernetes side: finds, applies (server-side apply, field manager `iter8`), reads back
//! and cleans up an experiment's routing rules. Implements the core's [`TrafficRouter`].
//! [`IstioRouter::watching`] reads rules and Deployments from reflector stores, and applies
//! only rules whose content changes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use iter8_core::action::RoutingAction;
use iter8_core::model::{Cleanup, Experiment, RoutingReference};
use iter8_core::observation::RoutingObservation;
use iter8_core::ports::{PortError, TrafficRouter};
use iter8_core::routing_labels::{Claim, claim, named_experiment, still_holds};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{self, RoutingTarget, Stage};
use crate::error::IstioError;
use crate::labels::{self, Role};
use crate::reference;
use crate::types::{DestinationRule, VirtualService};

/// Who holds the rules found for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// No rules yet.
    Nobody,
    /// This experiment.
    This,
    /// Rules that may be taken over: stable, unlabelled, or left by an experiment that ended.
    Free,
    /// Another running experiment: its `name.namespace`.
    Other(String),
}

/// The rules found for an experiment's host.
#[derive(Debug, Clone)]
pub struct Found {
    /// The VirtualService, if any.
    pub virtual_service: Option<VirtualService>,
    /// The DestinationRule, if any (Deployment kind).
    pub destination_rule: Option<DestinationRule>,
    /// Who holds them.
    pub holder: Holder,
}

/// Routes an experiment's traffic with Istio rules applied through the Kubernetes API.
#[derive(Clone)]
pub struct IstioRouter {
    client: Client,
    cache: Option<std::sync::Arc<Cache>>,
}

/// Reflector stores of the objects the router reads, fed by tasks stopped on drop.
struct Cache {
    /// The namespace the stores hold (`None`: every namespace).
    namespace: Option<String>,
    virtual_services: Store<VirtualService>,
    destination_rules: Store<DestinationRule>,
    deployments: Store<Deployment>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// True once every store has had its first list.
    synced: tokio::sync::watch::Receiver<bool>,
    /// This router's own writes its stores may not show yet, so that a reconcile never acts
    /// on rules older than its own last write (and reads nothing from the API for that).
    written_virtual_services: Written<VirtualService>,
    written_destination_rules: Written<DestinationRule>,
}

/// Own writes by `(namespace, name)`: the object the API server returned (`None`: deleted).
/// An entry goes once the store shows that version (or the deletion).
type Written<K> = std::sync::Mutex<BTreeMap<(String, String), Option<K>>>;

impl Drop for Cache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A kind of routing rule the cache holds.
trait Rule: Resource<DynamicType = ()> + Clone + 'static {
    fn store(cache: &Cache) -> &Store<Self>;
    fn written(cache: &Cache) -> &Written<Self>;
}

impl Rule for VirtualService {
    fn store(cache: &Cache) -> &Store<Self> {
        &cache.virtual_services
    }
    fn written(cache: &Cache) -> &Written<Self> {
        &cache.written_virtual_services
    }
}

impl Rule for DestinationRule {
    fn store(cache: &Cache) -> &Store<Self> {
        &cache.destination_rules
    }
    fn written(cache: &Cache) -> &Written<Self> {
        &cache.written_destination_rules
    }
}

impl Cache {
    /// Whether the stores hold `namespace` (a namespaced operator's cross-namespace targets
    /// are read from the API instead).
    fn covers(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// Whether the stores hold `namespace` and have completed their first list. Until then
    /// (and without Istio's CRDs or the right to watch them, when they never list) reads go
    /// to the API, which also reports why it cannot answer.
    fn ready_for(&self, namespace: &str) -> bool {
        self.covers(namespace) && *self.synced.borrow()
    }
}

/// A store of `K` in `namespace` (all namespaces: `None`), and the task that feeds it.
fn reflect<K, B>(
    client: &Client,
    namespace: Option<&str>,
    backoff: B,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    B: Backoff + 'static,
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .backoff(backoff)
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(events);
        // The watcher retries after an error (with the backoff); the error is only logged.
        while let Some(event) = events.next().await {
            if let Err(error) = event {
                tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
            }
        }
    });
    (store, task)
}

impl IstioRouter {
    /// A router reading and writing through `client` directly.
    pub fn new(client: Client) -> IstioRouter {
        IstioRouter {
            client,
            cache: None,
        }
    }

    /// A router reading VirtualServices, DestinationRules and Deployments of `namespace` (all:
    /// `None`) from reflector stores it keeps up to date, its watches pausing after an error as
    /// the backoffs `backoff` makes; writes go through `client`. Needs a tokio runtime.
    pub fn watching<B>(
        client: Client,
        namespace: Option<&str>,
        backoff: impl Fn() -> B,
    ) -> IstioRouter
    where
        B: Backoff + 'static,
    {
        let (virtual_services, vs_task) = reflect(&client, namespace, backoff());
        let (destination_rules, dr_task) = reflect(&client, namespace, backoff());
        let (deployments, deployment_task) = reflect(&client, namespace, backoff());
        // One task waits for the first lists: kube-runtime's `Store::wait_until_ready` wakes
        // only the last of several concurrent waiters.
        let (synced_tx, synced) = tokio::sync::watch::channel(false);
        let first_lists = {
            let (vs, dr, deployments) = (
                virtual_services.clone(),
                destination_rules.clone(),
                deployments.clone(),
            );
            tokio::spawn(async move {
                let listed = vs.wait_until_ready().await.is_ok()
                    && dr.wait_until_ready().await.is_ok()
                    && deployments.wait_until_ready().await.is_ok();
                synced_tx.send_replace(listed);
            })
        };
        IstioRouter {
            client,
            cache: Some(std::sync::Arc::new(Cache {
                namespace: namespace.map(str::to_string),
                virtual_services,
                destination_rules,
                deployments,
                tasks: vec![vs_task, dr_task, deployment_task, first_lists],
                synced,
                written_virtual_services: Written::default(),
                written_destination_rules: Written::default(),
            })),
        }
    }

    /// Finds the rules for the experiment's host (by label `iter8-tools/host`) and who holds them.
    pub async fn find(&self, target: &RoutingTarget) -> Result<Found, IstioError> {
        let selector = labels::selector(labels::HOST, &target.host_label());
        let services: Vec<VirtualService> = self.list(target, &selector).await?;
        let virtual_service = pick(services, target, None);
        let holder = match &virtual_service {
            None => Holder::Nobody,
            Some(vs) => self.holder(target, &vs.metadata).await?,
        };
        let destination_rule = if target.uses_subsets() {
            let rules: Vec<DestinationRule> = self.list(target, &selector).await?;
            let vs_name = virtual_service
                .as_ref()
                .and_then(|vs| vs.metadata.name.clone());
            pick(rules, target, vs_name.as_deref())
        } else {
            None
        };
        Ok(Found {
            virtual_service,
            destination_rule,
            holder,
        })
    }

    /// What routing does now for the experiment.
    pub async fn observe_routing(
        &self,
        exp: &Experiment,
    ) -> Result<RoutingObservation, IstioError> {
        let target = RoutingTarget::from_experiment(exp)?;
        if let Some(reference) = &exp.spec.routing_reference {
            return self.observe_referenced(&target, reference).await;
        }
        let found = self.find(&target).await?;
        let missing = missing_objects(&target, &found);
        Ok(match (found.holder, found.virtual_service) {
            (Holder::Other(other), _) => RoutingObservation {
                split: None,
                held_by: Some(other),
                ..Default::default()
            },
            (Holder::This, Some(vs)) => RoutingObservation {
                split: build::served_split(&target, &vs),
                held_by: None,
                missing,
            },
            _ => RoutingObservation {
                missing,
                ..Default::default()
            },
        })
    }

    /// Applies a routing action and checks the VirtualService serves the wanted split.
    pub async fn apply_action(
        &self,
        exp: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), IstioError> {
        let target = RoutingTarget::from_experiment(exp)?;
        if let Some(reference) = &exp.spec.routing_reference {
            return self.apply_referenced(target, reference, action).await;
        }
        let found = self.find(&target).await?;
        if let Holder::Other(other) = &found.holder {
            return Err(IstioError::HeldBy(other.clone()));
        }
        if deletes_rules_at_the_end(exp, action) {
            // v0.2.1: `cleanup: delete` removes the rules iter8 created for the experiment
            // instead of leaving them stable; rules it took over stay, stable.
            let created_by_iter8 = found
                .virtual_service
                .as_ref()
                .is_some_and(|vs| deletable(&vs.metadata, &target));
            match found.holder {
                Holder::This if created_by_iter8 => {
                    self.cleanup(exp).await?;
                    return Ok(());
                }
                // Already deleted (a completion replayed after its status write failed).
                Holder::Nobody => return Ok(()),
                _ => {}
            }
        }
        let (target, stage) = self.resolve(target, action).await?;
        let vs_name = object_name(found.virtual_service.as_ref().map(|o| &o.metadata), &target);
        let vs_init = was_created_by_iter8(found.virtual_service.as_ref().map(|o| &o.metadata));
        let vs = build::virtual_service(&target, &stage, &vs_name, vs_init);
        let dr = if target.uses_subsets() {
            let name = object_name(
                found.destination_rule.as_ref().map(|o| &o.metadata),
                &target,
            );
            let init = was_created_by_iter8(found.destination_rule.as_ref().map(|o| &o.metadata));
            Some(build::destination_rule(&target, &stage, &name, init)?)
        } else {
            None
        };
        // Subsets are added before the VirtualService routes to them, and dropped only after
        // it stops, so no request meets a missing subset.
        // Rules that already say what iter8 would apply are left alone: no write.
        let dropping = stage.role() == Role::Stable;
        let dr = dr.filter(|dr| {
            !found
                .destination_rule
                .as_ref()
                .is_some_and(|f| f.spec == dr.spec && holds(&f.metadata, &dr.metadata))
        });
        if !dropping && let Some(dr) = &dr {
            self.server_side_apply(&target, dr).await?;
        }
        let applied = match found.virtual_service {
            Some(f) if f.spec == vs.spec && holds(&f.metadata, &vs.metadata) => f,
            _ => self.server_side_apply(&target, &vs).await?,
        };
        if dropping && let Some(dr) = &dr {
            self.server_side_apply(&target, dr).await?;
        }
        let wanted = stage.split();
        let served = build::served_split(&target, &applied);
        if served != Some(wanted) {
            return Err(IstioError::NotApplied {
                namespace: target.namespace.clone(),
                name: vs_name,
                found: served.map_or("no split".to_string(), |s| {
                    format!("{}/{}", s.baseline, s.candidate)
                }),
                wanted_baseline: wanted.baseline,
                wanted_candidate: wanted.candidate,
            });
        }
        Ok(())
    }

    /// The VirtualService `spec.routingReference` names; `None` when it does not exist.
    async fn get_referenced(
        &self,
        target: &RoutingTarget,
        reference: &RoutingReference,
    ) -> Result<(String, String, Option<VirtualService>), IstioError> {
        let (namespace, name) = reference::referenced(reference, &target.namespace)?;
        if let Some(cache) = &self.cache
            && cache.ready_for(&namespace)
        {
            let found = cache
                .virtual_services
                .get(&ObjectRef::new(&name).within(&namespace))
                .map(|vs| (*vs).clone());
            return Ok((namespace, name, found));
        }
        let api: Api<VirtualService> = Api::namespaced(self.client.clone(), &namespace);
        let found = api
            .get_opt(&name)
            .await
            .map_err(|source| IstioError::Kube {
                verb: "get",
                kind: "VirtualService".to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(source),
            })?;
        Ok((namespace, name, found))
    }

    /// What the referenced VirtualService's target route does now. A missing VirtualService,
    /// or one without a route for the target, is observed as "no routing yet": applying then
    /// fails with the reason, which pauses the experiment with `RoutingRulesError`.
    async fn observe_referenced(
        &self,
        target: &RoutingTarget,
        reference: &RoutingReference,
    ) -> Result<RoutingObservation, IstioError> {
        let vs = match self.get_referenced(target, reference).await {
            Ok((_, _, Some(vs))) => vs,
            Ok((_, _, None)) | Err(IstioError::ReferenceNotSupported(_)) => {
                return Ok(RoutingObservation::default());
            }
            Err(e) => return Err(e),
        };
        Ok(match self.holder(target, &vs.metadata).await? {
            Holder::Other(other) => RoutingObservation {
                split: None,
                held_by: Some(other),
                ..Default::default()
            },
            Holder::This => RoutingObservation {
                split: reference::target_route(&vs, target, true)
                    .ok()
                    .and_then(|i| build::route_split(target, &vs.spec.http[i])),
                held_by: None,
                missing: self.missing_referenced_rule(target).await?,
            },
            _ => RoutingObservation::default(),
        })
    }

    /// The DestinationRule iter8 creates beside a referenced VirtualService, when it is gone
    /// (`Kind namespace/name`); the VirtualService is the user's, so it is never put back.
    async fn missing_referenced_rule(
        &self,
        target: &RoutingTarget,
    ) -> Result<Vec<String>, IstioError> {
        if !target.uses_subsets() {
            return Ok(Vec::new());
        }
        let selector = labels::selector(labels::HOST, &target.host_label());
        let rules: Vec<DestinationRule> = self.list(target, &selector).await?;
        Ok(match pick(rules, target, None) {
            Some(_) => Vec::new(),
            None => vec![format!(
                "DestinationRule {}/{}",
                target.namespace,
                object_name(None, target)
            )],
        })
    }

    /// Applies a routing action to the referenced VirtualService's target route, with the
    /// DestinationRule iter8 creates for the subsets (Deployment kind).
    async fn apply_referenced(
        &self,
        target: RoutingTarget,
        reference: &RoutingReference,
        action: &RoutingAction,
    ) -> Result<(), IstioError> {
        let (namespace, name, found) = self.get_referenced(&target, reference).await?;
        let vs = found.ok_or_else(|| IstioError::ReferenceNotFound {
            kind: "VirtualService",
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
        let holder = self.holder(&target, &vs.metadata).await?;
        if let Holder::Other(other) = holder {
            return Err(IstioError::HeldBy(other));
        }
        let (target, stage) = self.resolve(target, action).await?;
        let held = holder == Holder::This;
        let changed = reference::at_stage(&vs, &target, &stage, held)?;
        let body = reference::apply_body(&changed, &target, &stage);
        let dr = if target.uses_subsets() {
            let selector = labels::selector(labels::HOST, &target.host_label());
            let rules: Vec<DestinationRule> = self.list(&target, &selector).await?;
            let existing = pick(rules, &target, None);
            let name = object_name(existing.as_ref().map(|o| &o.metadata), &target);
            let init = was_created_by_iter8(existing.as_ref().map(|o| &o.metadata));
            Some(build::destination_rule(&target, &stage, &name, init)?)
        } else {
            None
        };
        // As for iter8's own rules: subsets exist before routes use them, and go after.
        let dropping = stage.role() == Role::Stable;
        if !dropping && let Some(dr) = &dr {
            self.server_side_apply(&target, dr).await?;
        }
        let api: Api<VirtualService> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams::apply(labels::FIELD_MANAGER).force();
        let applied = api
            .patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|source| IstioError::Kube {
                verb: "apply",
                kind: "VirtualService".to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(source),
            })?;
        if dropping && let Some(dr) = &dr {
            self.server_side_apply(&target, dr).await?;
        }
        let wanted = stage.split();
        let served = reference::target_route(&applied, &target, true)
            .ok()
            .and_then(|i| build::route_split(&target, &applied.spec.http[i]));
        if served != Some(wanted) {
            return Err(IstioError::NotApplied {
                namespace,
                name,
                found: served.map_or("no split".to_string(), |s| {
                    format!("{}/{}", s.baseline, s.candidate)
                }),
                wanted_baseline: wanted.baseline,
                wanted_candidate: wanted.candidate,
            });
        }
        Ok(())
    }

    /// Deletes the rules for the experiment's host that iter8 created (`iter8-tools/init:
    /// "True"`) and this experiment holds; returns what was deleted (`Kind namespace/name`).
    pub async fn cleanup(&self, exp: &Experiment) -> Result<Vec<String>, IstioError> {
        let target = RoutingTarget::from_experiment(exp)?;
        let selector = labels::selector(labels::HOST, &target.host_label());
        let mut deleted = Vec::new();
        let services: Vec<VirtualService> = self.list(&target, &selector).await?;
        for vs in services.iter().filter(|o| deletable(&o.metadata, &target)) {
            deleted.push(self.delete::<VirtualService>(&target, &vs.metadata).await?);
        }
        if target.uses_subsets() {
            let rules: Vec<DestinationRule> = self.list(&target, &selector).await?;
            for dr in rules.iter().filter(|o| deletable(&o.metadata, &target)) {
                deleted.push(
                    self.delete::<DestinationRule>(&target, &dr.metadata)
                        .await?,
                );
            }
        }
        Ok(deleted)
    }

    /// The stage an action asks for, with the pod-template labels it needs read from the
    /// Deployments (Deployment kind).
    async fn resolve(
        &self,
        target: RoutingTarget,
        action: &RoutingAction,
    ) -> Result<(RoutingTarget, Stage), IstioError> {
        if !target.uses_subsets() {
            return Ok((target, Stage::for_action(action, true)));
        }
        let mut candidate = None;
        let candidate_present = if matches!(action, RoutingAction::Initialize) {
            candidate = self
                .template_labels(&target.namespace, &target.candidate.name)
                .await?;
            candidate.is_some()
        } else {
            true
        };
        let stage = Stage::for_action(action, candidate_present);
        let (with_baseline, with_candidate) = stage.versions();
        let baseline = if with_baseline {
            Some(self.required_labels(&target, &target.baseline.name).await?)
        } else {
            None
        };
        if with_candidate && candidate.is_none() {
            candidate = Some(
                self.required_labels(&target, &target.candidate.name)
                    .await?,
            );
        }
        Ok((target.with_labels(baseline, candidate), stage))
    }

    async fn required_labels(
        &self,
        target: &RoutingTarget,
        name: &str,
    ) -> Result<BTreeMap<String, String>, IstioError> {
        self.template_labels(&target.namespace, name)
            .await?
            .ok_or_else(|| IstioError::DeploymentNotFound {
                namespace: target.namespace.clone(),
                name: name.to_string(),
            })
    }

    /// A Deployment's pod-template labels; `None` when the Deployment does not exist.
    async fn template_labels(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, IstioError> {
        let deployment = if let Some(cache) = &self.cache
            && cache.ready_for(namespace)
        {
            cache
                .deployments
                .get(&ObjectRef::new(name).within(namespace))
                .map(|d| (*d).clone())
        } else {
            self.get_deployment(namespace, name).await?
        };
        let Some(deployment) = deployment else {
            return Ok(None);
        };
        let labels = deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default();
        if labels.is_empty() {
            return Err(IstioError::NoTemplateLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        Ok(Some(labels))
    }

    async fn get_deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deployment>, IstioError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name).await.map_err(|source| IstioError::Kube {
            verb: "get",
            kind: "Deployment".to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        })
    }

    /// Who holds rules with this metadata.
    async fn holder(
        &self,
        target: &RoutingTarget,
        meta: &ObjectMeta,
    ) -> Result<Holder, IstioError> {
        let experiment = label(meta, labels::EXPERIMENT);
        let role = label(meta, labels::ROLE);
        Ok(match claim(experiment, role, &target.experiment) {
            Claim::Ours => Holder::This,
            Claim::Free => Holder::Free,
            Claim::Another(other) if self.is_running(other).await? => {
                Holder::Other(other.to_string())
            }
            Claim::Another(_) => Holder::Free,
        })
    }

    /// Whether the experiment named by an `iter8-tools/experiment` label still runs (exists and
    /// has not completed). A value that names no experiment (or was shortened to a hash) counts
    /// as running.
    async fn is_running(&self, label_value: &str) -> Result<bool, IstioError> {
        if labels::is_shortened(label_value) {
            return Ok(true);
        }
        let Some((name, namespace)) = named_experiment(label_value) else {
            return Ok(true);
        };
        let gvk = GroupVersionKind::gvk("iter8.tools", "v1alpha1", iter8_core::model::KIND);
        let resource = ApiResource::from_gvk_with_plural(&gvk, "experiments");
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let found = api.get_opt(name).await.map_err(|source| IstioError::Kube {
            verb: "get",
            kind: "Experiment".to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        })?;
        Ok(found.is_some_and(|exp| {
            still_holds(exp.data.pointer("/status/phase").and_then(|p| p.as_str()))
        }))
    }

    async fn list<K>(&self, target: &RoutingTarget, selector: &str) -> Result<Vec<K>, IstioError>
    where
        K: Rule
            + Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        if let Some(items) = self.cached_list::<K>(target).await {
            return Ok(items);
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &target.namespace);
        api.list(&ListParams::default().labels(selector))
            .await
            .map(|list| list.items)
            .map_err(|source| IstioError::Kube {
                verb: "list",
                kind: kind_name::<K>(),
                namespace: target.namespace.clone(),
                name: selector.to_string(),
                source: Box::new(source),
            })
    }

    /// The rules of the target's host from the stores, with this router's own writes the
    /// stores do not show yet in place of what they show (`None`: no stores, or not listed yet).
    async fn cached_list<K: Rule>(&self, target: &RoutingTarget) -> Option<Vec<K>> {
        let cache = self.cache.as_ref()?;
        if !cache.ready_for(&target.namespace) {
            return None;
        }
        let host = target.host_label();
        let of_host = |meta: &ObjectMeta| {
            meta.namespace.as_deref() == Some(target.namespace.as_str())
                && label(meta, labels::HOST) == Some(host.as_str())
        };
        let version = |o: &K| o.meta().resource_version.as_deref()?.parse::<u64>().ok();
        let key = |o: &K| {
            (
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default(),
            )
        };
        let store = K::store(cache);
        let mut written = K::written(cache).lock().unwrap_or_else(|e| e.into_inner());
        // Forget the writes the store has caught up with.
        let mut missing = false;
        written.retain(|(ns, name), wrote| {
            let cached = store.get(&ObjectRef::new(name).within(ns));
            let seen = match (wrote, cached) {
                (Some(wrote), Some(c)) => version(&c) >= version(wrote),
                (None, cached) => cached.is_none(),
                (Some(_), None) => {
                    missing = true;
                    false
                }
            };
            !seen
        });
        // A write the store does not hold at all is either not seen yet or deleted by someone
        // since: only the API can tell.
        if missing {
            return None;
        }
        let mut rules: BTreeMap<(String, String), K> = store
            .state()
            .iter()
            .filter(|o| of_host(o.meta()))
            .map(|o| (key(o), (**o).clone()))
            .collect();
        for (at, wrote) in written.iter() {
            match wrote {
                Some(object) if of_host(object.meta()) => {
                    rules.insert(at.clone(), object.clone());
                }
                // Deleted, or no longer labelled for this host.
                _ => {
                    rules.remove(at);
                }
            }
        }
        Some(rules.into_values().collect())
    }

    /// Remembers a write of this router until the store shows it.
    fn wrote<K: Rule>(&self, namespace: &str, name: &str, object: Option<K>) {
        if let Some(cache) = &self.cache {
            K::written(cache)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((namespace.to_string(), name.to_string()), object);
        }
    }

    async fn server_side_apply<K>(&self, target: &RoutingTarget, obj: &K) -> Result<K, IstioError>
    where
        K: Rule
            + Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &target.namespace);
        let params = PatchParams::apply(labels::FIELD_MANAGER).force();
        let applied = api
            .patch(&name, &params, &Patch::Apply(obj))
            .await
            .map_err(|source| IstioError::Kube {
                verb: "apply",
                kind: kind_name::<K>(),
                namespace: target.namespace.clone(),
                name: name.clone(),
                source: Box::new(source),
            })?;
        self.wrote(&target.namespace, &name, Some(applied.clone()));
        Ok(applied)
    }

    async fn delete<K>(
        &self,
        target: &RoutingTarget,
        meta: &ObjectMeta,
    ) -> Result<String, IstioError>
    where
        K: Rule
            + Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = meta.name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &target.namespace);
        self.wrote::<K>(&target.namespace, &name, None);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                return Err(IstioError::Kube {
                    verb: "delete",
                    kind: kind_name::<K>(),
                    namespace: target.namespace.clone(),
                    name,
                    source: Box::new(source),
                });
            }
        }
        Ok(format!(
            "{} {}/{}",
            kind_name::<K>(),
            target.namespace,
            name
        ))
    }
}

#[async_trait]
impl TrafficRouter for IstioRouter {
    async fn observe(&self, experiment: &Experiment) -> Result<RoutingObservation, PortError> {
        Ok(self.observe_routing(experiment).await?)
    }

    async fn apply(
        &self,
        experiment: &Experiment,
        action: &RoutingAction,
    ) -> Result<(), PortError> {
        Ok(self.apply_action(experiment, action).await?)
    }
}

/// The objects of iter8's own rules that do not exist (`Kind namespace/name`): with no rules
/// for the host, the VirtualService (and the DestinationRule, Deployment kind); with this
/// experiment's VirtualService, a missing DestinationRule. Rules another experiment holds, or
/// free rules, miss nothing of this experiment's.
fn missing_objects(target: &RoutingTarget, found: &Found) -> Vec<String> {
    let named = |kind: &str| format!("{kind} {}/{}", target.namespace, target.name);
    let mut missing = Vec::new();
    match found.holder {
        Holder::Nobody => missing.push(named("VirtualService")),
        Holder::This => {}
        Holder::Free | Holder::Other(_) => return missing,
    }
    if target.uses_subsets() && found.destination_rule.is_none() {
        missing.push(named("DestinationRule"));
    }
    missing
}

fn kind_name<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Prefers the object this experiment holds, then the one named `name` (or iter8's default
/// name), then the first.
fn pick<K: Resource>(mut items: Vec<K>, target: &RoutingTarget, name: Option<&str>) -> Option<K> {
    let wanted_name = name.unwrap_or(&target.name);
    let rank = |meta: &ObjectMeta| {
        if label(meta, labels::EXPERIMENT) == Some(target.experiment.as_str()) {
            0
        } else if meta.name.as_deref() == Some(wanted_name) {
            1
        } else {
            2
        }
    };
    items.sort_by_key(|o| rank(o.meta()));
    items.into_iter().next()
}

/// Whether `found` already carries every label and annotation of `wanted`.
fn holds(found: &ObjectMeta, wanted: &ObjectMeta) -> bool {
    let subset = |a: &Option<BTreeMap<String, String>>, b: &Option<BTreeMap<String, String>>| {
        a.iter()
            .flatten()
            .all(|(k, v)| b.as_ref().and_then(|b| b.get(k)) == Some(v))
    };
    subset(&wanted.labels, &found.labels) && subset(&wanted.annotations, &found.annotations)
}

fn object_name(meta: Option<&ObjectMeta>, target: &RoutingTarget) -> String {
    meta.and_then(|m| m.name.clone())
        .unwrap_or_else(|| target.name.clone())
}

/// New objects are iter8's; existing ones keep whether they were.
fn was_created_by_iter8(meta: Option<&ObjectMeta>) -> bool {
    meta.is_none_or(|m| label(m, labels::INIT) == Some(labels::INIT_TRUE))
}

/// Whether `action` ends an experiment with `cleanup: delete` (a completion, not the rollback
/// of an experiment being deleted, which must keep routing all traffic to the baseline).
fn deletes_rules_at_the_end(exp: &Experiment, action: &RoutingAction) -> bool {
    matches!(action, RoutingAction::Finalize { .. })
        && exp.spec.cleanup == Some(Cleanup::Delete)
        && !exp.is_being_deleted()
}

fn deletable(meta: &ObjectMeta, target: &RoutingTarget) -> bool {
    label(meta, labels::INIT) == Some(labels::INIT_TRUE)
        && label(meta, labels::EXPERIMENT) == Some(target.experiment.as_str())
}
