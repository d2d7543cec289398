//! The parts of Istio's `networking.istio.io/v1alpha3` VirtualService and DestinationRule that
//! iter8 writes and reads, as Rust types. Field names and types follow the CRDs' openAPIV3Schema
//! (the tests validate every generated object against it). Every field is optional when read, so
//! that rules written by people or other tools still parse. Fields iter8 does not model are
//! never sent in rules iter8 builds; in a VirtualService the user owns (`spec.routingReference`)
//! they are kept as JSON in `other`, so the user's matches, rewrites and other routes survive.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The API group of Istio's networking resources.
pub const GROUP: &str = "networking.istio.io";
/// The version iter8 uses: served by every Istio release since 1.0, including 1.5+.
pub const VERSION: &str = "v1alpha3";
/// `apiVersion` of the objects iter8 writes.
pub const API_VERSION: &str = "networking.istio.io/v1alpha3";

/// `VirtualService.spec`: where requests for a set of hosts go.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1alpha3",
    kind = "VirtualService",
    plural = "virtualservices",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// The hosts the routes apply to (service FQDN and Gateway hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The gateways and sidecars that apply the routes (`mesh` for sidecars).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// HTTP routes; iter8 writes exactly one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// Every other field of a user's VirtualService (`tcp`, `tls`, `exportTo`...), kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One entry of `VirtualService.spec.http`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// The route's name, if any (iter8 sets none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Every other field of a user's route (`match`, `rewrite`, `timeout`...), kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One weighted destination of an HTTP route.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where the traffic goes.
    #[serde(default)]
    pub destination: Destination,
    /// Relative share in percent; Istio reads an absent weight as 0 (100 for a lone destination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

/// A service (and optionally a subset and port) traffic is sent to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// The service's host name (FQDN).
    #[serde(default)]
    pub host: String,
    /// A subset of the DestinationRule for the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The port on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// `destination.port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// The port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// `DestinationRule.spec`: named subsets of a host's pods.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[kube(
    group = "networking.istio.io",
    version = "v1alpha3",
    kind = "DestinationRule",
    plural = "destinationrules",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service's host name (FQDN).
    #[serde(default)]
    pub host: String,
    /// The subsets (`baseline`, `candidate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
}

/// One subset of a DestinationRule: the pods carrying all of `labels`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// The subset's name.
    #[serde(default)]
    pub name: String,
    /// The pod labels that select it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
