//! The kube-runtime controller: watches Experiments, and Deployments and Services mapped to the
//! experiments that name them; each reconcile reads the experiment, its targets and the
//! metrics ConfigMap from reflector stores fed by those watches, runs
//! `iter8_core::driver::reconcile_once` over the adapters and schedules the next reconcile at
//! the decision's `requeue_after`. Since every reconcile computes the wake-up from the status,
//! a restarted operator picks every experiment up on time. At most
//! [`Settings::max_concurrent_reconciles`] reconciles run at once; the others wait their turn.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{FutureExt, StreamExt};
use iter8_core::action::{Event, EventType};
use iter8_core::driver::{self, DriverError, Ports};
use iter8_core::engine::{self, messages};
use iter8_core::model::{ConditionType, Experiment, ExperimentStatus, ObjectMeta, Phase};
use iter8_core::ports::{Analytics, DashboardLink, EventRecorder, TrafficRouter};
use iter8_core::{MetricsConfig, manifest::ManifestError};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::{Semaphore, watch};

use crate::backoff::watch_backoff;
use crate::config::MetricsConfigSource;
use crate::crd::{self, ExperimentResource};
use crate::error::KubeError;
use crate::events::KubeEvents;
use crate::metrics::OperatorMetrics;
use crate::store::KubeStore;
use crate::targets::KubeTargets;

/// What the controller watches and where it reads its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The namespace whose experiments are reconciled; `None` for all namespaces.
    pub namespace: Option<String>,
    /// Where the metrics ConfigMap `iter8config-metrics` is read first (`iter8`).
    pub metrics_namespace: String,
    /// This operator instance's name in events (`reportingInstance`), e.g. the pod name.
    pub instance: String,
    /// How long to wait before retrying a reconcile that failed.
    pub retry_after: Duration,
    /// Fast abort: check `stopOnFailure` criteria this often between interval boundaries.
    pub abort_check_every: Option<Duration>,
    /// The failure budget: failed attempts in a row before a running experiment rolls back.
    pub failure_limit: u32,
    /// Let experiments name targets in other namespaces (off: such an experiment pauses with
    /// a `ValidationError` naming `spec.targetService.namespace`).
    pub allow_cross_namespace: bool,
    /// How many reconciles run at once; the others queue (so that many experiments reaching an
    /// interval boundary together are spread out, not stampeded).
    pub max_concurrent_reconciles: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            metrics_namespace: "iter8".to_string(),
            instance: "iter8-controller".to_string(),
            retry_after: Duration::from_secs(10),
            abort_check_every: Some(Duration::from_secs(5)),
            failure_limit: engine::DEFAULT_FAILURE_LIMIT,
            allow_cross_namespace: false,
            max_concurrent_reconciles: 16,
        }
    }
}

/// The adapters the Kubernetes adapter does not provide itself.
#[derive(Clone)]
pub struct Adapters {
    /// Routes traffic (Istio).
    pub router: Arc<dyn TrafficRouter>,
    /// Analyses (built in over Prometheus, or remote).
    pub analytics: Arc<dyn Analytics>,
    /// Builds `status.grafanaURL`.
    pub dashboard: Arc<dyn DashboardLink>,
    /// Records events instead of the built-in Kubernetes Events recorder (for example one that
    /// also sends them to notifiers); `None`: Kubernetes Events only.
    pub events: Option<Arc<dyn EventRecorder>>,
}

/// The reflector stores a reconcile reads from.
#[derive(Clone)]
pub struct Stores {
    /// The watched Experiments.
    pub experiments: Store<ExperimentResource>,
    /// The watched Deployments.
    pub deployments: Store<Deployment>,
    /// The watched Services.
    pub services: Store<Service>,
    /// The metrics ConfigMaps, one store per namespace scope watched.
    pub config_maps: Vec<Store<ConfigMap>>,
    /// The store that has not had its first list yet (`None`: every one has).
    waiting_for: watch::Receiver<Option<&'static str>>,
}

impl Stores {
    /// Stores fed by watches of their own, for reconciling outside [`run`] (tests, tools);
    /// they stay fed while the returned [`Watches`] lives.
    pub fn watch(client: &Client, settings: &Settings) -> (Stores, Watches) {
        let (experiments, experiment_task) =
            reflect_in_task(scoped(client, settings), watcher::Config::default());
        let (deployments, deployment_task) =
            reflect_in_task(scoped(client, settings), watcher::Config::default());
        let (services, service_task) =
            reflect_in_task(scoped(client, settings), watcher::Config::default());
        let (config_maps, mut tasks) = watch_metrics_config_maps(client, settings);
        let (stores, sync_task) = Stores::new(
            experiments,
            deployments,
            services,
            config_maps,
            ExperimentsListed::Wait,
        );
        tasks.extend([experiment_task, deployment_task, service_task, sync_task]);
        (stores, Watches(tasks))
    }

    /// The stores, and the task that follows their first lists (stop it with the watches).
    ///
    /// That task is the only waiter on each store's `wait_until_ready`, and publishes its
    /// progress on a watch channel, which wakes every reconcile waiting on it: kube-runtime's
    /// `wait_until_ready` keeps the waker of its last waiter only (a oneshot channel), so of
    /// many reconciles waiting on it directly all but one slept until their timeout, and a
    /// second waiter on the controller's own store could leave the controller unwoken.
    fn new(
        experiments: Store<ExperimentResource>,
        deployments: Store<Deployment>,
        services: Store<Service>,
        config_maps: Vec<Store<ConfigMap>>,
        experiments_listed: ExperimentsListed,
    ) -> (Stores, tokio::task::JoinHandle<()>) {
        let (progress, waiting_for) = watch::channel(Some("Experiments"));
        let stores = Stores {
            experiments,
            deployments,
            services,
            config_maps,
            waiting_for,
        };
        let watched = stores.clone();
        let task = tokio::spawn(async move {
            // A store whose writer is gone never becomes ready: reconciles then fail NotSynced.
            let first_lists = async {
                if experiments_listed == ExperimentsListed::Wait {
                    watched.experiments.wait_until_ready().await.ok()?;
                }
                progress.send_replace(Some("Deployments"));
                watched.deployments.wait_until_ready().await.ok()?;
                progress.send_replace(Some("Services"));
                watched.services.wait_until_ready().await.ok()?;
                progress.send_replace(Some("the metrics ConfigMap"));
                for store in &watched.config_maps {
                    store.wait_until_ready().await.ok()?;
                }
                progress.send_replace(None);
                Some(())
            };
            first_lists.await;
        });
        (stores, task)
    }

    /// Waits until every store has had its first complete list (until then, a missing object
    /// may only be not listed yet), at most [`SYNC_WAIT`].
    async fn ready(&self) -> Result<(), KubeError> {
        let mut waiting_for = self.waiting_for.clone();
        let synced = tokio::time::timeout(SYNC_WAIT, waiting_for.wait_for(Option::is_none)).await;
        match synced {
            Ok(Ok(_)) => Ok(()),
            _ => Err(KubeError::NotSynced(
                (*self.waiting_for.borrow()).unwrap_or("the stores"),
            )),
        }
    }
}

/// Who waits for the Experiments store's first list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ExperimentsListed {
    /// The stores' own task (the store is fed by a watch of its own).
    Wait,
    /// The controller: it starts no reconcile before its store has listed, and its wait must
    /// stay the only one on that store.
    ByController,
}

/// How long a reconcile waits for the stores' first list before it fails (and is retried).
pub const SYNC_WAIT: Duration = Duration::from_secs(30);

/// The tasks feeding stores; dropping this stops them.
pub struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The API of `K` in the namespace the operator watches (all namespaces: `None`).
fn scoped<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// How many changes a trigger subscriber of the Experiments store may lag behind before the
/// store's watch waits for it.
const TRIGGER_BUFFER: usize = 1024;

/// A store of `K` in the watched namespaces, and the stream that feeds it: each object it yields
/// (deletions included) is in the store first. The controller polls it for its triggers.
fn reflected<K>(
    client: &Client,
    settings: &Settings,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, events) = reflect(scoped(client, settings), watcher::Config::default());
    (store, events.touched_objects())
}

/// Drives a watch stream, logging its errors (the watcher retries after each, with the backoff).
async fn log_watch_errors<K: kube::Resource<DynamicType = ()>>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
) {
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        if let Err(error) = event {
            tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying");
        }
    }
}

/// A store of what `api` lists under `config`, and the task that keeps it current.
fn reflect_in_task<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, events) = reflect(api, config);
    (store, tokio::spawn(log_watch_errors::<K>(events)))
}

/// A store of what `api` lists under `config`, and the watch events that feed it (each in the
/// store before it is yielded): retried with the backoff, without managed fields.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, config)
        .backoff(watch_backoff())
        .modify(forget_managed_fields)
        .reflect(writer);
    (store, events)
}

/// Drops `metadata.managedFields` before an object enters a store: nothing reads it, and it is
/// often the largest part of the object.
fn forget_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Everything a reconcile needs.
pub struct Context {
    client: Client,
    settings: Settings,
    adapters: Adapters,
    stores: Stores,
    targets: KubeTargets,
    store: KubeStore,
    events: Arc<dyn EventRecorder>,
    config: MetricsConfigSource,
    metrics: Arc<OperatorMetrics>,
    /// Turns for reconciles ([`Settings::max_concurrent_reconciles`]).
    turns: Semaphore,
}

impl Context {
    /// A context over a client and the stores, with the given adapters and metrics.
    pub fn new(
        client: Client,
        settings: Settings,
        adapters: Adapters,
        stores: Stores,
        metrics: Arc<OperatorMetrics>,
    ) -> Context {
        Context {
            targets: KubeTargets::new(
                client.clone(),
                settings.namespace.clone(),
                stores.experiments.clone(),
                stores.deployments.clone(),
                stores.services.clone(),
            ),
            store: KubeStore::new(client.clone()),
            events: adapters.events.clone().unwrap_or_else(|| {
                Arc::new(KubeEvents::new(client.clone(), settings.instance.clone()))
            }),
            config: MetricsConfigSource::new(
                stores.config_maps.clone(),
                settings.metrics_namespace.clone(),
            ),
            turns: Semaphore::new(settings.max_concurrent_reconciles.max(1)),
            stores,
            client,
            settings,
            adapters,
            metrics,
        }
    }
}

/// Why a reconcile failed (it is retried after [`Settings::retry_after`]).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An API call of the adapter failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The driver could not complete the step.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The reconcile panicked (a bug); the panic is confined to this experiment.
    #[error("internal error: {0}")]
    Panicked(String),
}

impl ReconcileError {
    /// The cause, as a metrics label.
    pub fn cause(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "kubernetes",
            ReconcileError::Driver(DriverError::Targets(_)) => "targets",
            ReconcileError::Driver(DriverError::Routing(_)) => "routing",
            ReconcileError::Driver(DriverError::Store(_)) => "store",
            ReconcileError::Panicked(_) => "panic",
        }
    }
}

/// Reconciles one experiment now: returns when to reconcile it again (`None`: on a change).
pub async fn reconcile_experiment(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Duration>, ReconcileError> {
    ctx.stores.ready().await?;
    let cached = ctx
        .stores
        .experiments
        .get(&ObjectRef::new(name).within(namespace));
    let resource = match cached {
        Some(r) if !ctx.store.is_behind_own_write(&r) => r,
        Some(_) => {
            // The watch has not delivered this controller's last write yet: acting on the
            // older state would repeat what that write recorded, so read afresh.
            let api: Api<ExperimentResource> = Api::namespaced(ctx.client.clone(), namespace);
            match api
                .get_opt(name)
                .await
                .map_err(|e| KubeError::api("get", "Experiment", namespace, name, e))?
            {
                Some(r) => Arc::new(r),
                None => return Ok(gone(ctx, namespace, name)),
            }
        }
        None => return Ok(gone(ctx, namespace, name)),
    };
    let exp = match crd::to_core(&resource) {
        Ok(exp) => exp,
        Err(problem) => return unreadable(ctx, &resource, &problem).await,
    };
    let (metrics, metrics_error) = match ctx.config.load(exp.namespace()) {
        Ok(m) => (m, None),
        Err(e) => (MetricsConfig::default(), Some(e.to_string())),
    };
    let mut ectx = engine::Context::new(&metrics, Utc::now());
    ectx.dashboard = &*ctx.adapters.dashboard;
    ectx.metrics_error = metrics_error;
    ectx.abort_check_every = ctx.settings.abort_check_every;
    ectx.failure_limit = ctx.settings.failure_limit;
    ectx.allow_cross_namespace = ctx.settings.allow_cross_namespace;
    let ports = Ports {
        targets: &ctx.targets,
        router: &*ctx.adapters.router,
        analytics: &*ctx.adapters.analytics,
        store: &ctx.store,
        events: &*ctx.events,
    };
    if exp.is_being_deleted() {
        // Forget it before the finalizer goes: once the object is gone, /metrics no longer
        // shows it.
        ctx.metrics.forget(namespace, name);
    }
    let decision = driver::reconcile_once(&exp, &ports, &ectx).await?;
    ctx.metrics.events(&decision.events);
    if decision.status.message != exp.status.message
        && let Some(message) = &decision.status.message
    {
        ctx.metrics.decision(message);
    }
    let mut after = exp.clone();
    after.status = decision.status.clone();
    if !exp.is_being_deleted() {
        ctx.metrics.observe(&after);
    }
    tracing::debug!(
        experiment = %format!("{namespace}/{name}"),
        phase = ?after.status.phase,
        message = after.status.message.as_deref().unwrap_or(""),
        requeue_after = ?decision.requeue_after,
        "reconciled"
    );
    Ok(decision.requeue_after)
}

/// An experiment that is gone: nothing to do until it comes back.
fn gone(ctx: &Context, namespace: &str, name: &str) -> Option<Duration> {
    ctx.metrics.forget(namespace, name);
    ctx.store.forget(namespace, name);
    None
}

/// The experiment with only what a status patch, a finalizer change or an event needs (name,
/// namespace, uid, resourceVersion, finalizers): for experiments the model cannot hold.
fn identity(resource: &ExperimentResource) -> Experiment {
    Experiment {
        metadata: ObjectMeta {
            name: Some(resource.name_any()),
            namespace: resource.namespace(),
            finalizers: resource.finalizers().to_vec(),
            other: [
                ("uid", resource.metadata.uid.clone()),
                (
                    "resourceVersion",
                    resource.metadata.resource_version.clone(),
                ),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), serde_json::Value::String(v?))))
            .collect(),
            ..ObjectMeta::default()
        },
        ..Experiment::default()
    }
}

/// An experiment the core's model cannot read (a wrong type the schema let through, or an
/// API server without the CRD's validation): pause with a message naming the field.
async fn unreadable(
    ctx: &Context,
    resource: &ExperimentResource,
    problem: &ManifestError,
) -> Result<Option<Duration>, ReconcileError> {
    let exp = identity(resource);
    if resource.metadata.deletion_timestamp.is_some() {
        // Nothing was ever routed for an experiment that could not be read.
        use iter8_core::ports::ExperimentStore;
        ctx.metrics.forget(
            resource.namespace().as_deref().unwrap_or_default(),
            &resource.name_any(),
        );
        ctx.store
            .remove_finalizer(&exp)
            .await
            .map_err(DriverError::Store)?;
        return Ok(None);
    }
    let old: ExperimentStatus = crd::core_status(resource);
    let now = Utc::now();
    let mut status = old.clone();
    status.create_timestamp.get_or_insert(now);
    let text = problem.to_string();
    status.phase = Some(Phase::Pause);
    status.message = Some(format!("{}: {text}", messages::VALIDATION_ERROR));
    status.set_condition(
        ConditionType::MetricsSynced,
        false,
        messages::VALIDATION_ERROR,
        &text,
        now,
    );
    status.set_condition(
        ConditionType::Ready,
        false,
        "",
        "waiting for targets, metrics, analytics or routing",
        now,
    );
    if status != old {
        ctx.store.patch_status(&exp, &old, &status).await?;
        let event = Event {
            type_: EventType::Warning,
            reason: messages::VALIDATION_ERROR.to_string(),
            message: text,
        };
        let _ = ctx.events.record(&exp, &event).await;
        if let Some(message) = &status.message {
            ctx.metrics.decision(message);
        }
    }
    let mut shown = exp;
    shown.status = status;
    ctx.metrics.observe(&shown);
    Ok(None)
}

async fn reconcile(
    resource: Arc<ExperimentResource>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    ctx.metrics.queued(1);
    let turn = ctx.turns.acquire().await;
    ctx.metrics.queued(-1);
    let started = Instant::now();
    let namespace = resource.namespace().unwrap_or_default();
    // A panic (a bug: there should be none) must not take the controller, and with it every
    // other experiment, down: it becomes this experiment's error.
    let out = AssertUnwindSafe(reconcile_experiment(&ctx, &namespace, &resource.name_any()))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(ReconcileError::Panicked(panic_text(&*panic))));
    if let Err(ReconcileError::Panicked(text)) = &out {
        show_panic(&ctx, &resource, text).await;
    }
    drop(turn);
    ctx.metrics.reconciled(started.elapsed());
    Ok(match out? {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The text a panic was raised with.
fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Shows a reconcile's panic in the experiment's status (paused with `InternalError`) and as a
/// Warning event; best effort, since the error is logged and retried anyway.
async fn show_panic(ctx: &Context, resource: &ExperimentResource, text: &str) {
    let exp = identity(resource);
    let old = crd::core_status(resource);
    let mut status = old.clone();
    let message = format!("{}: {text}", messages::INTERNAL_ERROR);
    if !status.is_completed() {
        status.phase = Some(Phase::Pause);
        status.message = Some(message.clone());
    }
    if status != old
        && let Err(e) = ctx.store.patch_status(&exp, &old, &status).await
    {
        tracing::warn!(experiment = %crd::qualified_name(resource), error = %e, "could not show the panic in the status");
    }
    let event = Event {
        type_: EventType::Warning,
        reason: messages::INTERNAL_ERROR.to_string(),
        message: text.to_string(),
    };
    let _ = ctx.events.record(&exp, &event).await;
    ctx.metrics.decision(&message);
}

fn error_policy(
    resource: Arc<ExperimentResource>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.error(error.cause());
    tracing::warn!(
        experiment = %crd::qualified_name(&resource),
        error = %error,
        "reconcile failed; retrying"
    );
    Action::requeue(ctx.settings.retry_after)
}

/// The experiments (from the controller's cache) whose targets include a Deployment.
fn experiments_naming_deployment(
    store: &Store<ExperimentResource>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<ExperimentResource>> {
    store
        .state()
        .iter()
        .filter(|e| crd::target_namespace(e) == namespace)
        .filter(|e| {
            crd::target_field(e, "baseline") == Some(name)
                || crd::target_field(e, "candidate") == Some(name)
        })
        .map(|e| ObjectRef::from_obj(&**e))
        .collect()
}

/// The experiments (from the controller's cache) whose service, or (`kind: Service`) versions,
/// include a Service.
fn experiments_naming_service(
    store: &Store<ExperimentResource>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<ExperimentResource>> {
    store
        .state()
        .iter()
        .filter(|e| crd::target_namespace(e) == namespace)
        .filter(|e| {
            crd::target_field(e, "name") == Some(name)
                || (crd::target_field(e, "kind") == Some("Service")
                    && (crd::target_field(e, "baseline") == Some(name)
                        || crd::target_field(e, "candidate") == Some(name)))
        })
        .map(|e| ObjectRef::from_obj(&**e))
        .collect()
}

/// The experiments (from the controller's cache) waiting for `other`'s targets, once `other`
/// has completed or is being deleted: a second experiment on the same service, or with a
/// version that is either of `other`'s (as `KubeTargets::claimed_by` claims them), pauses until
/// then and has no other change to wake it.
fn experiments_waiting_for(
    store: &Store<ExperimentResource>,
    other: &ExperimentResource,
) -> Vec<ObjectRef<ExperimentResource>> {
    let released = other.metadata.deletion_timestamp.is_some()
        || crd::core_status(other).phase == Some(Phase::Completed);
    if !released {
        return Vec::new();
    }
    let namespace = crd::target_namespace(other);
    fn given<'a>(e: &'a ExperimentResource, field: &str) -> Option<&'a str> {
        crd::target_field(e, field).filter(|v| !v.is_empty())
    }
    fn versions(e: &ExperimentResource) -> Vec<&str> {
        ["baseline", "candidate"]
            .into_iter()
            .filter_map(|f| given(e, f))
            .collect()
    }
    let other_versions = versions(other);
    let shares = |e: &ExperimentResource| {
        given(other, "name").is_some_and(|name| given(e, "name") == Some(name))
            || versions(e).iter().any(|v| other_versions.contains(v))
    };
    store
        .state()
        .iter()
        .filter(|e| e.namespace() == other.namespace() && e.name_any() != other.name_any())
        .filter(|e| crd::target_namespace(e) == namespace)
        .filter(|e| crd::core_status(e).start_timestamp.is_none())
        .filter(|e| shares(e))
        .map(|e| ObjectRef::from_obj(&**e))
        .collect()
}

/// Runs the controller until `shutdown` completes; in-flight reconciles finish first.
pub async fn run(
    client: Client,
    settings: Settings,
    adapters: Adapters,
    metrics: Arc<OperatorMetrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // One watch per kind feeds both a store and the controller's triggers, and a trigger comes
    // only after its store holds the change, so the reconcile it starts reads that change (with
    // separate watches, a reconcile could read the state from before the change that triggered
    // it and, with nothing left to trigger it again, wait on it for good).
    let (experiment_store, experiment_writer) =
        reflector::store_shared::<ExperimentResource>(TRIGGER_BUFFER);
    let own_triggers = experiment_writer
        .subscribe()
        .expect("a shared store can be subscribed to");
    let waiting_triggers = experiment_writer
        .subscribe()
        .expect("a shared store can be subscribed to");
    let experiment_events = watcher(scoped(&client, &settings), watcher::Config::default())
        .backoff(watch_backoff())
        .modify(forget_managed_fields)
        .reflect_shared(experiment_writer);
    let experiment_task = tokio::spawn(log_watch_errors::<ExperimentResource>(experiment_events));
    let (deployment_store, deployment_triggers) = reflected::<Deployment>(&client, &settings);
    let (service_store, service_triggers) = reflected::<Service>(&client, &settings);
    let (config_maps, config_map_tasks) = watch_metrics_config_maps(&client, &settings);
    let controller = Controller::for_shared_stream(own_triggers, experiment_store.clone());
    let by_deployment = experiment_store.clone();
    let by_service = experiment_store.clone();
    let by_experiment = experiment_store.clone();
    let (stores, sync_task) = Stores::new(
        experiment_store,
        deployment_store,
        service_store,
        config_maps,
        ExperimentsListed::ByController,
    );
    let mut tasks = config_map_tasks;
    tasks.extend([experiment_task, sync_task]);
    let store_watches = Watches(tasks);
    let ctx = Arc::new(Context::new(client, settings, adapters, stores, metrics));
    controller
        .trigger_backoff(watch_backoff())
        .watches_stream(deployment_triggers, move |d: Deployment| {
            experiments_naming_deployment(
                &by_deployment,
                &d.namespace().unwrap_or_default(),
                &d.name_any(),
            )
        })
        .watches_stream(service_triggers, move |s: Service| {
            experiments_naming_service(
                &by_service,
                &s.namespace().unwrap_or_default(),
                &s.name_any(),
            )
        })
        .watches_shared_stream(waiting_triggers, move |e: Arc<ExperimentResource>| {
            experiments_waiting_for(&by_experiment, &e)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "controller");
            }
        })
        .await;
    drop(store_watches);
}

/// Stores of the ConfigMaps named `iter8config-metrics` the operator may read: in every
/// namespace, or in the watched namespace and the metrics namespace. Each is fed by a task
/// that the caller aborts when the controller stops.
fn watch_metrics_config_maps(
    client: &Client,
    settings: &Settings,
) -> (Vec<Store<ConfigMap>>, Vec<tokio::task::JoinHandle<()>>) {
    let apis = match &settings.namespace {
        None => vec![Api::<ConfigMap>::all(client.clone())],
        Some(ns) if *ns == settings.metrics_namespace => {
            vec![Api::namespaced(client.clone(), ns)]
        }
        Some(ns) => vec![
            Api::namespaced(client.clone(), &settings.metrics_namespace),
            Api::namespaced(client.clone(), ns),
        ],
    };
    let only_ours = watcher::Config::default().fields(&format!(
        "metadata.name={}",
        iter8_core::metrics_config::CONFIGMAP_NAME
    ));
    apis.into_iter()
        .map(|api| reflect_in_task(api, only_ours.clone()))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;

    fn listed<K>(writer: &mut Writer<K>)
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }

    /// Many reconciles wait for the first lists at once (an operator starting with many
    /// experiments): every one goes on as soon as the lists are in, none sleeps until its
    /// timeout. Virtual time: a reconcile woken only by its timeout would go on SYNC_WAIT
    /// after the start.
    #[tokio::test(start_paused = true)]
    async fn every_waiting_reconcile_goes_on_when_the_stores_have_listed() {
        let (experiments, mut experiment_writer) = reflector::store::<ExperimentResource>();
        let (deployments, mut deployment_writer) = reflector::store::<Deployment>();
        let (services, mut service_writer) = reflector::store::<Service>();
        let (config_map, mut config_map_writer) = reflector::store::<ConfigMap>();
        let (stores, _sync) = Stores::new(
            experiments,
            deployments,
            services,
            vec![config_map],
            ExperimentsListed::Wait,
        );
        let start = tokio::time::Instant::now();
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let stores = stores.clone();
                tokio::spawn(
                    async move { stores.ready().await.map(|()| tokio::time::Instant::now()) },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        listed(&mut experiment_writer);
        listed(&mut deployment_writer);
        listed(&mut service_writer);
        listed(&mut config_map_writer);
        for reconcile in waiting {
            let went_on = reconcile
                .await
                .expect("no panic")
                .expect("the stores are ready");
            assert!(
                went_on - start < Duration::from_secs(2),
                "a reconcile went on {:?} after the start (the lists came at 1 s)",
                went_on - start
            );
        }
    }

    /// Under the controller, the stores do not wait on its Experiments store: the controller's
    /// own wait is the one woken when it lists (a second waiter would take its wake-up).
    #[tokio::test(start_paused = true)]
    async fn the_controllers_wait_for_its_store_is_left_alone() {
        let (experiments, mut experiment_writer) = reflector::store::<ExperimentResource>();
        let (deployments, mut deployment_writer) = reflector::store::<Deployment>();
        let (services, mut service_writer) = reflector::store::<Service>();
        let controller_store = experiments.clone();
        let controller = tokio::spawn(async move {
            controller_store
                .wait_until_ready()
                .await
                .map(|()| tokio::time::Instant::now())
        });
        let (stores, _sync) = Stores::new(
            experiments,
            deployments,
            services,
            Vec::new(),
            ExperimentsListed::ByController,
        );
        let start = tokio::time::Instant::now();
        let reconcile = tokio::spawn(async move { stores.ready().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        listed(&mut deployment_writer);
        listed(&mut service_writer);
        listed(&mut experiment_writer);
        let woken = tokio::time::timeout(SYNC_WAIT, controller)
            .await
            .expect("the controller is woken when its store lists")
            .expect("no panic")
            .expect("its store is ready");
        assert!(woken - start < Duration::from_secs(2));
        reconcile
            .await
            .expect("no panic")
            .expect("the other stores are ready");
    }

    /// A store that never lists (the operator may not watch it) fails the reconcile after
    /// SYNC_WAIT with an error naming it.
    #[tokio::test(start_paused = true)]
    async fn a_store_that_never_lists_is_named_after_the_wait() {
        let (experiments, mut experiment_writer) = reflector::store::<ExperimentResource>();
        let (deployments, _deployment_writer) = reflector::store::<Deployment>();
        let (services, _service_writer) = reflector::store::<Service>();
        let (stores, _sync) = Stores::new(
            experiments,
            deployments,
            services,
            Vec::new(),
            ExperimentsListed::Wait,
        );
        listed(&mut experiment_writer);
        let err = stores.ready().await.expect_err("Deployments never listed");
        assert!(matches!(err, KubeError::NotSynced("Deployments")), "{err}");
    }
}
