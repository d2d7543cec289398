//! # iter8-kubernetes
//!
//! The Kubernetes side of iter8: the `Experiment` custom resource and its CRD ([`crd`]), the
//! core's ports over the Kubernetes API ([`store`], [`events`], [`targets`], [`config`]), the
//! kube-runtime controller ([`controller`]), the operator around it ([`operator`]: metrics,
//! health, leader election, shutdown) and the install bundle ([`install`]).
//!
//! See `docs/operator.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod schema;

pub mod backoff;
pub mod config;
pub mod controller;
pub mod crd;
pub mod error;
pub mod events;
pub mod install;
pub mod merge_patch;
pub mod metrics;
pub mod operator;
pub mod routers;
pub mod server;
pub mod store;
pub mod targets;
pub mod watch_config;

pub use controller::{Adapters, Settings};
pub use crd::{ExperimentResource, crd, crd_yaml};
pub use error::KubeError;
pub use metrics::OperatorMetrics;
pub use routers::ByReference;
