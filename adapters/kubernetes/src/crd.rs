//! The `Experiment` custom resource as the Kubernetes API sees it (`experiments.iter8.tools`,
//! `v1alpha1`, namespaced, status subresource), its CRD, and the conversion to the core's model.
//!
//! The resource keeps `spec`, the top-level `action` and `status` as JSON: the CRD's schema is
//! generated from the mirrors in [`crate::schema`], and reading into the core's types happens in
//! [`to_core`], where an error names the field at fault.

use std::borrow::Cow;

use iter8_core::manifest::{self, ManifestError};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::KubeError;

/// The API group of the Experiment resource.
pub const GROUP: &str = "iter8.tools";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The plural resource name.
pub const PLURAL: &str = "experiments";
/// The CRD's name.
pub const CRD_NAME: &str = "experiments.iter8.tools";

/// The fields of an Experiment beside `metadata` and `status`: `spec` and the top-level `action`.
// Clippy reads the repeated `printcolumn(...)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "iter8.tools",
    version = "v1alpha1",
    kind = "Experiment",
    root = "ExperimentResource",
    plural = "experiments",
    singular = "experiment",
    shortname = "exp",
    category = "all",
    category = "iter8",
    namespaced,
    no_spec,
    status = "StatusDoc",
    derive = "PartialEq",
    doc = "An iter8 canary experiment: shifts traffic from a baseline to a candidate version while its success criteria hold.",
    printcolumn(
        name = "phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Phase of the experiment"
    ),
    printcolumn(
        name = "status",
        type_ = "string",
        json_path = ".status.message",
        description = "Detailed status of the experiment"
    ),
    printcolumn(
        name = "baseline",
        type_ = "string",
        json_path = ".spec.targetService.baseline",
        description = "Name of the baseline"
    ),
    printcolumn(
        name = "percentage",
        type_ = "integer",
        json_path = ".status.trafficSplitPercentage.baseline",
        description = "Traffic percentage for the baseline"
    ),
    printcolumn(
        name = "candidate",
        type_ = "string",
        json_path = ".spec.targetService.candidate",
        description = "Name of the candidate"
    ),
    printcolumn(
        name = "percentage",
        type_ = "integer",
        json_path = ".status.trafficSplitPercentage.candidate",
        description = "Traffic percentage for the candidate"
    )
)]
pub struct ExperimentFields {
    /// What the user asks for (read into the core's `ExperimentSpec`).
    #[schemars(with = "crate::schema::SpecSchema")]
    pub spec: serde_json::Value,
    /// A user action: `pause`, `resume`, `override_success` or `override_failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::schema::ActionSchema>")]
    pub action: Option<serde_json::Value>,
}

/// `status`, kept as JSON (read into the core's `ExperimentStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(transparent)]
pub struct StatusDoc(#[schemars(with = "crate::schema::StatusSchema")] pub serde_json::Value);

/// The CRD, generated from the types above.
pub fn crd() -> CustomResourceDefinition {
    let generated = ExperimentResource::crd();
    let Ok(mut value) = serde_json::to_value(&generated) else {
        return generated;
    };
    if let Some(versions) = value
        .pointer_mut("/spec/versions")
        .and_then(|v| v.as_array_mut())
    {
        for version in versions {
            let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") else {
                continue;
            };
            tidy(schema);
            if let Some(map) = schema.as_object_mut() {
                map.remove("title");
            }
            schema["description"] = DESCRIPTION.into();
            schema["properties"]["spec"]["description"] = SPEC_DESCRIPTION.into();
            schema["properties"]["status"]["description"] = STATUS_DESCRIPTION.into();
            schema["x-kubernetes-validations"] = target_service_immutable();
        }
    }
    serde_json::from_value(value).unwrap_or(generated)
}

const DESCRIPTION: &str = "An iter8 canary experiment (iter8 v0.2 compatible): shifts traffic \
     from a baseline to a candidate version while its success criteria hold.";
const SPEC_DESCRIPTION: &str =
    "What the user asks for: the target service and its versions, traffic control, analysis.";
const STATUS_DESCRIPTION: &str =
    "What the operator has done so far; written by the operator only (status subresource).";

/// `spec.targetService` is immutable once the experiment has started (a transition rule at the
/// root, since only there can it see the status): routing and targets were set up for it.
fn target_service_immutable() -> serde_json::Value {
    serde_json::json!([{
        "rule": "!has(oldSelf.status) || !has(oldSelf.status.startTimestamp) \
                 || self.spec.targetService == oldSelf.spec.targetService",
        "message": "spec.targetService is immutable once the experiment has started",
        "fieldPath": ".spec.targetService",
        "reason": "FieldValueInvalid",
    }])
}

/// Drops the `null` schemars adds to the values of optional enums (`nullable` says it).
fn tidy(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(values)) = map.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            map.values_mut().for_each(tidy);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// The CRD as YAML, as `iter8 crd` prints it.
pub fn crd_yaml() -> Result<String, KubeError> {
    serde_saphyr::to_string(&crd()).map_err(|e| KubeError::Yaml {
        what: "the Experiment CRD".to_string(),
        message: e.to_string(),
    })
}

/// Reads a resource into the core's model; the error names the field at fault
/// (`spec.trafficControl.maxIterations: invalid type: ...`).
pub fn to_core(resource: &ExperimentResource) -> Result<iter8_core::Experiment, ManifestError> {
    let mut value = serde_json::to_value(resource).map_err(|e| ManifestError {
        path: String::new(),
        message: e.to_string(),
    })?;
    // The API server fills these in; a resource built in memory may lack them.
    if let Some(obj) = value.as_object_mut() {
        obj.entry("apiVersion")
            .or_insert_with(|| iter8_core::model::API_VERSION.into());
        obj.entry("kind")
            .or_insert_with(|| iter8_core::model::KIND.into());
    }
    manifest::parse_document(0, value).map(|doc| doc.experiment)
}

/// The status as the core's model, or an empty one when it cannot be read.
pub fn core_status(resource: &ExperimentResource) -> iter8_core::ExperimentStatus {
    resource
        .status
        .as_ref()
        .and_then(|s| serde_json::from_value(s.0.clone()).ok())
        .unwrap_or_default()
}

/// `name.namespace`, as iter8 names experiments in labels and messages.
pub fn qualified_name(resource: &ExperimentResource) -> String {
    format!(
        "{}.{}",
        resource.name_any(),
        resource.namespace().unwrap_or_default()
    )
}

/// Where the experiment's targets live: `spec.targetService.namespace` or its own namespace.
pub fn target_namespace(resource: &ExperimentResource) -> String {
    resource
        .spec
        .spec
        .pointer("/targetService/namespace")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| resource.namespace())
        .unwrap_or_else(|| "default".to_string())
}

/// A string field of `spec.targetService` (`name`, `baseline`, `candidate`, `kind`).
pub fn target_field<'a>(resource: &'a ExperimentResource, field: &str) -> Option<&'a str> {
    resource
        .spec
        .spec
        .get("targetService")?
        .get(field)?
        .as_str()
}

/// The resource's kind name, for messages.
pub fn kind_name() -> Cow<'static, str> {
    ExperimentResource::kind(&())
}
