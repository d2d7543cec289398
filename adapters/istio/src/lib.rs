//! # iter8-istio
//!
//! Routes an iter8 experiment's traffic with Istio: one VirtualService and (Deployment kind) one
//! DestinationRule per service, named `<service>.<namespace>.svc.cluster.local.iter8-experiment`,
//! built for every stage of the experiment ([`build`]) and applied with server-side apply
//! through the Kubernetes API ([`router::IstioRouter`], the core's `TrafficRouter`).
//!
//! With `spec.routingReference` to a VirtualService the user owns, iter8 shifts the weights of
//! one of its routes instead ([`reference`]).
//!
//! See `docs/istio.md` for what is created at each stage and the reuse, refusal and cleanup rules.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod error;
pub mod labels;
pub mod reference;
pub mod router;
pub mod types;

pub use build::{RoutingObjects, RoutingTarget, Stage, build};
pub use error::IstioError;
pub use router::IstioRouter;
pub use types::{DestinationRule, VirtualService};
