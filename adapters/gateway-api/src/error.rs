//! What can go wrong while changing an HTTPRoute.

use iter8_core::ports::PortError;

/// An error of the Gateway API adapter; its message is what users see in the experiment's
/// status (`RoutingRulesError: ...`).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The experiment has no HTTPRoute `routingReference`.
    #[error("spec.routingReference must name an HTTPRoute ({api}) for Gateway API routing", api = crate::types::API_VERSION)]
    NoReference,
    /// A field routing needs is missing from the experiment.
    #[error("{0} is required for Gateway API routing")]
    MissingField(&'static str),
    /// The experiment's versions are not Services.
    #[error(
        "spec.targetService.kind must be Service with an HTTPRoute routingReference: Gateway API routes to Services, one per version"
    )]
    NotServiceKind,
    /// `spec.targetService.port` is out of range.
    #[error("spec.targetService.port {0} is not a port number (1-65535)")]
    BadPort(i64),
    /// The referenced HTTPRoute does not exist.
    #[error("Referenced rule does not exist: HTTPRoute {namespace}/{name}")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The route has no rules at all.
    #[error("Empty HTTPRoute: {namespace}/{name} has no rules")]
    NoRules {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// No rule has a backendRef to the baseline or the candidate Service.
    #[error(
        "HTTPRoute {namespace}/{name} has no rule with a backendRef to Service {baseline} or {candidate}"
    )]
    NoMatchingRule {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The baseline Service.
        baseline: String,
        /// The candidate Service.
        candidate: String,
    },
    /// The first rule for the target names one of the versions twice.
    #[error(
        "Multiple backendRefs to Service {service} in rule {rule} of HTTPRoute {namespace}/{name}"
    )]
    MultipleBackendRefs {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The rule's index in `spec.rules`.
        rule: usize,
        /// The Service named more than once.
        service: String,
    },
    /// Another running experiment holds the route.
    #[error("rules held by experiment {0}")]
    HeldBy(String),
    /// The Kubernetes API failed.
    #[error("{verb} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// What iter8 was doing (`get`, `apply`).
        verb: &'static str,
        /// The resource kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The API server accepted the apply but the route does not serve the wanted split.
    #[error("HTTPRoute {namespace}/{name} serves {found} after apply instead of {wanted}")]
    NotApplied {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What it serves (`baseline/candidate`, or `no split`).
        found: String,
        /// What was wanted (`baseline/candidate`).
        wanted: String,
    },
}

impl From<GatewayError> for PortError {
    fn from(err: GatewayError) -> Self {
        PortError::new(err.to_string())
    }
}
