//! The kube-runtime controller: watches Experiments, and Deployments and Services mapped to the
//! experiments that name them; each reconcile reads the experiment, its targets and the
//! metrics ConfigMap from reflector stores fed by those watches, runs
//! `iter8_core::driver::reconcile_once` over the adapters and schedules the next reconcile at
//! the decision's `requeue_after`. Since every reconcile computes the wake-up from the status,
//! a restarted operator picks every experiment up on time. At most
//! [`Settings::max_concurrent_reconciles`] reconciles run at once; the others wait their turn.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
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
use tokio::sync::Semaphore;

use crate::backoff::WatchBackoff;
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
}

impl Stores {
    /// Waits until every store has had its first complete list: until then, a missing object
    /// may only be not listed yet.
    async fn ready(&self) {
        let _ = self.experiments.wait_until_ready().await;
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        for store in &self.config_maps {
            let _ = store.wait_until_ready().await;
        }
    }
}

/// Everything a reconcile needs.
pub struct Context {
    client: Client,
    settings: Settings,
    adapters: Adapters,
    stores: Stores,
    targets: KubeTargets,
    store: KubeStore,
    events: KubeEvents,
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
                stores.experiments.clone(),
                stores.deployments.clone(),
                stores.services.clone(),
            ),
            store: KubeStore::new(client.clone()),
            events: KubeEvents::new(client.clone(), settings.instance.clone()),
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
}

impl ReconcileError {
    /// The cause, as a metrics label.
    pub fn cause(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "kubernetes",
            ReconcileError::Driver(DriverError::Targets(_)) => "targets",
            ReconcileError::Driver(DriverError::Routing(_)) => "routing",
            ReconcileError::Driver(DriverError::Store(_)) => "store",
            ReconcileError::Driver(DriverError::Protocol) => "protocol",
        }
    }
}

/// Reconciles one experiment now: returns when to reconcile it again (`None`: on a change).
pub async fn reconcile_experiment(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Duration>, ReconcileError> {
    ctx.stores.ready().await;
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
    let ports = Ports {
        targets: &ctx.targets,
        router: &*ctx.adapters.router,
        analytics: &*ctx.adapters.analytics,
        store: &ctx.store,
        events: &ctx.events,
    };
    if exp.is_being_deleted() {
        // Forget it before the finalizer goes: once the object is gone, /metrics no longer
        // shows it.
        ctx.metrics.forget(namespace, name);
    }
    let decision = driver::reconcile_once(&exp, &ports, &ectx).await?;
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

/// An experiment the core's model cannot read (a wrong type the schema let through, or an
/// API server without the CRD's validation): pause with a message naming the field.
async fn unreadable(
    ctx: &Context,
    resource: &ExperimentResource,
    problem: &ManifestError,
) -> Result<Option<Duration>, ReconcileError> {
    let exp = Experiment {
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
    };
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
    let out = reconcile_experiment(&ctx, &namespace, &resource.name_any()).await;
    drop(turn);
    ctx.metrics.reconciled(started.elapsed());
    Ok(match out? {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
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
/// has completed or is being deleted: a second experiment on the same service, baseline or
/// candidate pauses until then and has no other change to wake it.
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
    let shares = |e: &ExperimentResource, field: &str| {
        crd::target_field(other, field)
            .is_some_and(|v| !v.is_empty() && crd::target_field(e, field) == Some(v))
    };
    store
        .state()
        .iter()
        .filter(|e| e.namespace() == other.namespace() && e.name_any() != other.name_any())
        .filter(|e| crd::target_namespace(e) == namespace)
        .filter(|e| crd::core_status(e).start_timestamp.is_none())
        .filter(|e| {
            ["name", "baseline", "candidate"]
                .iter()
                .any(|f| shares(e, f))
        })
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
    let (experiments, deployments, services) = match &settings.namespace {
        Some(ns) => (
            Api::<ExperimentResource>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<ExperimentResource>::all(client.clone()),
            Api::<Deployment>::all(client.clone()),
            Api::<Service>::all(client.clone()),
        ),
    };
    // One watch per kind feeds both a store (what reconciles read) and the triggers.
    let (deployment_store, deployment_writer) = reflector::store();
    let deployment_events = watcher(deployments, watcher::Config::default())
        .backoff(WatchBackoff::new())
        .reflect(deployment_writer)
        .touched_objects();
    let (service_store, service_writer) = reflector::store();
    let service_events = watcher(services, watcher::Config::default())
        .backoff(WatchBackoff::new())
        .reflect(service_writer)
        .touched_objects();
    let (config_maps, config_map_tasks) = watch_metrics_config_maps(&client, &settings);
    let controller = Controller::new(experiments.clone(), watcher::Config::default());
    let by_deployment = controller.store();
    let by_service = controller.store();
    let by_experiment = controller.store();
    let stores = Stores {
        experiments: controller.store(),
        deployments: deployment_store,
        services: service_store,
        config_maps,
    };
    let ctx = Arc::new(Context::new(client, settings, adapters, stores, metrics));
    controller
        .trigger_backoff(WatchBackoff::new())
        .watches_stream(deployment_events, move |d: Deployment| {
            experiments_naming_deployment(
                &by_deployment,
                &d.namespace().unwrap_or_default(),
                &d.name_any(),
            )
        })
        .watches_stream(service_events, move |s: Service| {
            experiments_naming_service(
                &by_service,
                &s.namespace().unwrap_or_default(),
                &s.name_any(),
            )
        })
        .watches(
            experiments,
            watcher::Config::default(),
            move |e: ExperimentResource| experiments_waiting_for(&by_experiment, &e),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "controller");
            }
        })
        .await;
    for task in config_map_tasks {
        task.abort();
    }
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
        .map(|api| {
            let (store, writer) = reflector::store();
            let events = watcher(api, only_ours.clone())
                .backoff(WatchBackoff::new())
                .reflect(writer)
                .applied_objects();
            let task = tokio::spawn(async move {
                futures::pin_mut!(events);
                while events.next().await.is_some() {}
            });
            (store, task)
        })
        .unzip()
}
