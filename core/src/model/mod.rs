//! The `Experiment` resource (`iter8.tools/v1alpha1`): spec, status and the top-level `action`.

mod meta;
mod spec;
mod status;

pub use meta::ObjectMeta;
pub use spec::*;
pub use status::*;

use serde::{Deserialize, Serialize};

/// The API group and version of the Experiment resource.
pub const API_VERSION: &str = "iter8.tools/v1alpha1";
/// The kind of the Experiment resource.
pub const KIND: &str = "Experiment";
/// The finalizer iter8 puts on experiments so deletion first restores routing.
pub const FINALIZER: &str = "finalizer.iter8-tools";

crate::string_enum! {
    /// A user's request carried in the top-level `action` field.
    UserAction {
        /// Stop progressing; traffic stays where it is.
        Pause => "pause",
        /// Continue after a pause.
        Resume => "resume",
        /// End now and treat the candidate as the winner.
        OverrideSuccess => "override_success",
        /// End now and roll back to the baseline.
        OverrideFailure => "override_failure",
    }
}

/// An iter8 canary experiment, as stored in Kubernetes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// Always `iter8.tools/v1alpha1` for a valid experiment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Always `Experiment`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name, namespace, labels and the rest of Kubernetes' object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the user asked for.
    #[serde(default)]
    pub spec: ExperimentSpec,
    /// A user action (`pause`, `resume`, `override_success`, `override_failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<UserAction>,
    /// What the controller has done so far; all progress state lives here.
    #[serde(default, skip_serializing_if = "ExperimentStatus::is_empty")]
    pub status: ExperimentStatus,
}

impl Experiment {
    /// The experiment's name (empty when the manifest has none).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The namespace the experiment lives in (`default` when unset, as kubectl assumes).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The namespace of the service and its versions: `targetService.namespace` or the experiment's.
    pub fn target_namespace(&self) -> &str {
        self.spec
            .target_service
            .namespace
            .as_deref()
            .unwrap_or_else(|| self.namespace())
    }

    /// A copy with every defaulted field written out, as `iter8 validate` prints it.
    pub fn with_defaults(&self) -> Experiment {
        let mut exp = self.clone();
        exp.spec = exp.spec.with_defaults();
        exp
    }

    /// A copy with `status` in place of its own (which is not copied).
    pub fn with_status(&self, status: ExperimentStatus) -> Experiment {
        Experiment {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            spec: self.spec.clone(),
            action: self.action.clone(),
            status,
        }
    }

    /// Whether Kubernetes has marked the experiment for deletion.
    pub fn is_being_deleted(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// Whether iter8's finalizer is on the experiment.
    pub fn has_finalizer(&self) -> bool {
        self.metadata.finalizers.iter().any(|f| f == FINALIZER)
    }
}
