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
