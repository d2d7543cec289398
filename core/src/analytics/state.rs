//! The state one analysis hands to the next (`status.analysisState`, iter8-analytics'
//! `_last_state`).
//!
//! Each strategy reads the previous state into its own typed form and writes its new state
//! back as JSON; the engine, stored statuses and the remote analytics API only carry it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::AnalyticsError;

/// An analysis state, as the JSON document it is stored and sent as.
///
/// A state is never changed once made (the next analysis makes a new one), so copies of a
/// status share one document instead of copying it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AnalysisState(Arc<serde_json::Value>);

impl AnalysisState {
    /// The state of a strategy's typed form.
    pub fn of<S: Serialize>(state: &S) -> Result<Self, AnalyticsError> {
        serde_json::to_value(state)
            .map(AnalysisState::from)
            .map_err(|e| AnalyticsError::Invalid(format!("state: {e}")))
    }

    /// The state as JSON.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }

    /// The state as an owned JSON value.
    pub fn into_json(self) -> serde_json::Value {
        Arc::unwrap_or_clone(self.0)
    }

    /// Whether this is "no state yet": `null` or `{}` (what the controller sends first).
    pub fn is_empty(&self) -> bool {
        match self.as_json() {
            serde_json::Value::Null => true,
            serde_json::Value::Object(m) => m.is_empty(),
            _ => false,
        }
    }
}

impl From<serde_json::Value> for AnalysisState {
    fn from(v: serde_json::Value) -> Self {
        AnalysisState(Arc::new(v))
    }
}

impl PartialEq<serde_json::Value> for AnalysisState {
    fn eq(&self, other: &serde_json::Value) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<AnalysisState> for serde_json::Value {
    fn eq(&self, other: &AnalysisState) -> bool {
        *self == *other.0
    }
}
