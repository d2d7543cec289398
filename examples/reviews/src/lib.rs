//! # iter8-example-reviews
//!
//! A tiny stand-in for Bookinfo's `reviews` service, with the behaviours the iter8 v0.2 canary
//! tutorial relies on: `v2`, `v3` and `v6` answer in a few milliseconds, `v4` answers after
//! 5 seconds, `v5` fails every request with HTTP 500. It only ever listens on 127.0.0.1.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod behavior;
pub mod server;

pub use behavior::{Behavior, BehaviorError, parse_duration};
pub use server::{ReviewsServer, ServeError};
