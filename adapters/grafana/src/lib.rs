//! iter8's Grafana adapter: the experiment dashboard (uid `eXPEaNnZz`), the link to it
//! (`status.grafanaURL`, via [`GrafanaLink`]) and pushing it through Grafana's HTTP API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dashboard;
pub mod link;
pub mod panels;
pub mod promql;
pub mod push;
pub mod telemetry;
pub mod v021;

pub use dashboard::{
    DASHBOARD_TITLE, DASHBOARD_UID, DashboardError, DashboardInput, build_dashboard,
};
pub use link::GrafanaLink;
pub use push::{
    ClientSettings, GrafanaClient, PushError, PushResponse, Token, push_dashboard,
    push_dashboard_blocking,
};
pub use telemetry::Telemetry;
