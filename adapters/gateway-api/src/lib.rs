//! # iter8-gateway-api
//!
//! Routes an iter8 experiment's traffic with a Gateway API `HTTPRoute` the user owns
//! (`spec.routingReference`): iter8 changes only the weights of the rule that routes to the
//! baseline Service, adding and removing the candidate's backendRef, and leaves everything else
//! in the route as the user wrote it. [`route`] computes the changed route (pure);
//! [`router::GatewayRouter`] reads and applies it through the Kubernetes API with server-side
//! apply (the core's `TrafficRouter`).
//!
//! See `docs/gateway-api.md` for the rules and a worked example.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod route;
pub mod router;
pub mod types;

pub use error::GatewayError;
pub use route::{RouteTarget, Stage};
pub use router::GatewayRouter;
pub use types::{HTTPRoute, HTTPRouteSpec};
