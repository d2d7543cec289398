//! Analytics other than the built-in one: any `Analytics` port (remote analytics over HTTP, for
//! instance) run on the caller's executor, and the world's simulated Prometheus shared with a
//! server (`iter8 analytics serve` over the simulation).
//!
//! The built-in path stays as it was: a direct call answered at once, no runtime. An external
//! port may do real I/O, so each reconcile that uses it is handed, as a future, to the caller's
//! `block_on` (e.g. a tokio runtime's); virtual time stands still while it runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use iter8_core::Experiment;
use iter8_core::driver::{self, Ports, reconcile_once};
use iter8_core::engine::{Context, Decision};
use iter8_core::measurement::{MetricError, MetricReadings, MetricsQuery};
use iter8_core::ports::{Analytics, MetricSource};

use crate::metrics::SimMetrics;
use crate::world::World;

/// One reconcile, as a future for the caller's executor.
pub type ReconcileFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Decision, driver::DriverError>> + 'a>>;

/// Runs a reconcile's future to completion (e.g. `move |f| runtime.block_on(f)`).
pub type BlockOn =
    dyn for<'a> Fn(ReconcileFuture<'a>) -> Result<Decision, driver::DriverError> + Send + Sync;

/// An analytics port for the simulation, with the executor its futures run on.
pub struct ExternalAnalytics {
    analytics: Arc<dyn Analytics>,
    block_on: Box<BlockOn>,
}

impl std::fmt::Debug for ExternalAnalytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalAnalytics")
    }
}

impl ExternalAnalytics {
    /// `analytics` run by `block_on`. `block_on` must not be called from inside the executor
    /// it drives (tokio's `Runtime::block_on` panics there): step the simulation from a plain
    /// thread.
    pub fn new(
        analytics: impl Analytics + 'static,
        block_on: impl for<'a> Fn(ReconcileFuture<'a>) -> Result<Decision, driver::DriverError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        ExternalAnalytics {
            analytics: Arc::new(analytics),
            block_on: Box::new(block_on),
        }
    }

    /// One reconcile of `exp` over `world`'s ports and this analytics.
    pub(crate) fn reconcile(
        &self,
        exp: &Experiment,
        world: &World,
        ctx: &Context<'_>,
    ) -> Result<Decision, driver::DriverError> {
        let ports = Ports {
            targets: world,
            router: world,
            analytics: &*self.analytics,
            store: world,
            events: world,
        };
        (self.block_on)(Box::pin(reconcile_once(exp, &ports, ctx)))
    }
}

/// The simulated Prometheus of a shared [`World`], for a server on another thread. It answers
/// as [`SimMetrics`] does: over the traffic up to each query's window end, in virtual time.
#[derive(Debug, Clone)]
pub struct SharedMetrics(pub Arc<World>);

impl SharedMetrics {
    /// The world's virtual time as a wall-clock time (a server's clock, so that its defaults
    /// and "end time long ago" checks see the simulation's time).
    pub fn now(&self) -> DateTime<Utc> {
        self.0.lock().now.to_datetime()
    }
}

#[async_trait]
impl MetricSource for SharedMetrics {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        SimMetrics(&self.0).measure(query).await
    }
}
