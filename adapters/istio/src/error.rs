//! What can go wrong while building or applying routing rules.

use iter8_core::ports::PortError;

/// An error of the Istio adapter; its message is what users see in the experiment's status.
#[derive(Debug, thiserror::Error)]
pub enum IstioError {
    /// A field the routing rules need is missing from the experiment.
    #[error("spec.targetService.{field} is required for Istio routing")]
    MissingField {
        /// The field under `spec.targetService`.
        field: &'static str,
    },
    /// `spec.targetService.port` is out of range.
    #[error("spec.targetService.port {0} is not a port number (1-65535)")]
    BadPort(i64),
    /// The pod-template labels of a version are needed but unknown.
    #[error("the pod-template labels of {0} are unknown")]
    MissingLabels(String),
    /// A Deployment the rules select is not there.
    #[error("Deployment {namespace}/{name} not found")]
    DeploymentNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Deployment has no pod-template labels to select its pods by.
    #[error("Deployment {namespace}/{name} has no pod-template labels")]
    NoTemplateLabels {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `spec.routingReference` names an object that does not exist.
    #[error("Referenced rule does not exist: {kind} {namespace}/{name}")]
    ReferenceNotFound {
        /// Its kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `spec.routingReference` names a kind iter8 cannot route with.
    #[error(
        "Referenced rule not supported: {0} (use a networking.istio.io/v1alpha3 VirtualService, or a gateway.networking.k8s.io/v1 HTTPRoute)"
    )]
    ReferenceNotSupported(String),
    /// The referenced VirtualService has no HTTP routes.
    #[error("Empty HttpRoute: VirtualService {0} has no http routes")]
    EmptyHttpRoute(String),
    /// No HTTP route of the referenced VirtualService goes to the target.
    #[error(
        "no http route of VirtualService {virtual_service} has a destination whose host is {host}"
    )]
    NoHostMatchingRoute {
        /// `namespace/name`.
        virtual_service: String,
        /// The target's host.
        host: String,
    },
    /// The target route has more than one destination for the target host.
    #[error(
        "Multiple host-matching routes found: http[{index}] of VirtualService {virtual_service} has more than one destination for {host}"
    )]
    MultipleHostMatching {
        /// `namespace/name`.
        virtual_service: String,
        /// The route's index in `spec.http`.
        index: usize,
        /// The target's host.
        host: String,
    },
    /// Another running experiment holds the routing rules (status `RoutingRulesError`).
    #[error("rules held by experiment {0}")]
    HeldBy(String),
    /// The Kubernetes API failed.
    #[error("{verb} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// What iter8 was doing (`get`, `list`, `apply`, `delete`).
        verb: &'static str,
        /// The resource kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The object's name (or label selector, for a list).
        name: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The API server accepted an apply but the VirtualService does not serve the wanted split.
    #[error(
        "VirtualService {namespace}/{name} serves {found} after apply instead of {wanted_baseline}/{wanted_candidate}"
    )]
    NotApplied {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What it serves (`baseline/candidate`, or `no split`).
        found: String,
        /// The wanted baseline weight.
        wanted_baseline: u32,
        /// The wanted candidate weight.
        wanted_candidate: u32,
    },
}

impl From<IstioError> for PortError {
    fn from(err: IstioError) -> Self {
        PortError::new(err.to_string())
    }
}
