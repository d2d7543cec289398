//! The parts of Gateway API's `gateway.networking.k8s.io/v1` HTTPRoute that iter8 reads and
//! changes, as Rust types. Field names and types follow the v1.6.1 standard-channel CRD's
//! openAPIV3Schema (the tests validate generated routes against it). Everything iter8 does not
//! model (matches, filters, timeouts, a backendRef's filters, fields of later releases) is kept
//! as JSON in `other`, so a route read and written back is unchanged apart from the weights.

use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The API group of Gateway API resources.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// `apiVersion` of the HTTPRoutes iter8 changes.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// `HTTPRoute.spec`: where HTTP requests that reach the route's parents go.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    plural = "httproutes",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteSpec {
    /// The Gateways (or, for mesh traffic, the Service) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// The host names the route serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The route's rules; iter8 changes the backendRefs of one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HTTPRouteRule>,
    /// Every other field, kept as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One entry of `spec.parentRefs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// `gateway.networking.k8s.io` (a Gateway, the default) or `""` (a Service, GAMMA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `Gateway` (the default) or `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The parent's namespace; the route's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The parent's name.
    pub name: String,
    /// A listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A port of the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// One entry of `spec.rules`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteRule {
    /// Where matching requests go, by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HTTPBackendRef>,
    /// Every other field (`name`, `matches`, `filters`, `timeouts`...), kept as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One weighted backend of a rule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HTTPBackendRef {
    /// `""` (the core group, the default) for a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `Service` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The backend's name.
    pub name: String,
    /// The backend's namespace; the route's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Relative share of the rule's traffic; Gateway API reads an absent weight as 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Every other field (`filters`), kept as written.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The weight Gateway API gives a backendRef without one.
pub const DEFAULT_WEIGHT: i32 = 1;

impl HTTPBackendRef {
    /// Whether it names the Service `name` in `namespace` (`route_namespace` when unset).
    pub fn is_service(&self, name: &str, namespace: &str, route_namespace: &str) -> bool {
        let core_group = self.group.as_deref().is_none_or(str::is_empty);
        let service = self.kind.as_deref().is_none_or(|k| k == "Service");
        let ns = self.namespace.as_deref().unwrap_or(route_namespace);
        core_group && service && self.name == name && ns == namespace
    }

    /// The weight, defaulted.
    pub fn weight(&self) -> i32 {
        self.weight.unwrap_or(DEFAULT_WEIGHT)
    }
}
