//! # iter8-sim
//!
//! An in-memory simulated cluster for iter8 experiments: Deployments and Services applied from
//! manifests, a router holding each service's split, request sources whose requests are split
//! by the current weights and answered by each version's profile (latency, errors), and a
//! simulated Prometheus answering iter8's metric queries over that traffic. Experiments run
//! through `iter8_core::driver::reconcile_once` on a virtual clock: nothing sleeps, and the
//! same seed gives the same run.
//!
//! [`scenario::Sim`] is the entry point; [`tutorial`] replays the iter8 v0.2 canary tutorial,
//! [`whatif`] runs one experiment against a profile (`iter8 simulate`), [`plot`] draws it.
//! [`analytics`] runs experiments with another analytics port (e.g. a remote service).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analytics;
mod by_name;
pub mod clock;
pub mod cluster;
pub mod metrics;
pub mod plot;
pub mod profile;
pub mod router;
pub mod scenario;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod traffic;
pub mod tutorial;
pub mod whatif;
pub mod world;

pub use clock::SimTime;
pub use profile::{Latency, Profile, ProfileError, VersionProfile};
pub use scenario::{Reconciled, Sim, SimError};
pub use traffic::Target;
