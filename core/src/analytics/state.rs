//! The state one analysis hands to the next (`status.analysisState`, iter8-analytics'
//! `_last_state`).
//!
//! check_and_increment's state is kept typed so that a decision neither parses nor builds JSON;
//! every other state (other strategies', a remote service's) is kept as the JSON it came as.
//! Either way it serialises to exactly the JSON it stands for, so stored statuses and the
//! remote analytics API see the same documents whichever variant holds them.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::check_and_increment::CheckAndIncrementState;

/// An analysis state: typed when it is check_and_increment's, JSON otherwise.
#[derive(Debug, Clone)]
pub enum AnalysisState {
    /// check_and_increment's `{baseline, candidate}` state.
    CheckAndIncrement(CheckAndIncrementState),
    /// Any other state, as JSON.
    Json(serde_json::Value),
}

impl AnalysisState {
    /// The state as JSON (borrowed when it is kept as JSON).
    pub fn as_json(&self) -> Cow<'_, serde_json::Value> {
        match self {
            AnalysisState::Json(v) => Cow::Borrowed(v),
            AnalysisState::CheckAndIncrement(s) => Cow::Owned(ci_to_json(s)),
        }
    }

    /// The state as an owned JSON value.
    pub fn into_json(self) -> serde_json::Value {
        match self {
            AnalysisState::Json(v) => v,
            AnalysisState::CheckAndIncrement(s) => ci_to_json(&s),
        }
    }

    /// Whether this is "no state yet": `null` or `{}` (what the controller sends first).
    pub fn is_empty(&self) -> bool {
        match self {
            AnalysisState::Json(serde_json::Value::Null) => true,
            AnalysisState::Json(serde_json::Value::Object(m)) => m.is_empty(),
            _ => false,
        }
    }
}

fn ci_to_json(s: &CheckAndIncrementState) -> serde_json::Value {
    // Only finite numbers and `reading_value`'s strings: serialising to a Value cannot fail.
    serde_json::to_value(s).unwrap_or(serde_json::Value::Null)
}

impl From<CheckAndIncrementState> for AnalysisState {
    fn from(s: CheckAndIncrementState) -> Self {
        AnalysisState::CheckAndIncrement(s)
    }
}

impl From<serde_json::Value> for AnalysisState {
    /// Typed when the JSON is check_and_increment's state and writes back to the very same
    /// JSON (so `90` stays `90` and extra keys are kept); otherwise kept as JSON.
    fn from(v: serde_json::Value) -> Self {
        let candidate = match &v {
            serde_json::Value::Object(m)
                if m.len() == 2 && m.contains_key("baseline") && m.contains_key("candidate") =>
            {
                CheckAndIncrementState::deserialize(&v).ok()
            }
            _ => None,
        };
        match candidate {
            Some(s) if ci_to_json(&s) == v => AnalysisState::CheckAndIncrement(s),
            _ => AnalysisState::Json(v),
        }
    }
}

impl PartialEq for AnalysisState {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // NaN values are equal as JSON (`"NaN"`), as they were before the state was typed.
            (AnalysisState::CheckAndIncrement(a), AnalysisState::CheckAndIncrement(b)) => {
                a == b || ci_to_json(a) == ci_to_json(b)
            }
            (AnalysisState::Json(a), AnalysisState::Json(b)) => a == b,
            _ => self.as_json() == other.as_json(),
        }
    }
}

impl PartialEq<serde_json::Value> for AnalysisState {
    fn eq(&self, other: &serde_json::Value) -> bool {
        *self.as_json() == *other
    }
}

impl PartialEq<AnalysisState> for serde_json::Value {
    fn eq(&self, other: &AnalysisState) -> bool {
        other == self
    }
}

impl Serialize for AnalysisState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AnalysisState::CheckAndIncrement(state) => state.serialize(s),
            AnalysisState::Json(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AnalysisState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(AnalysisState::from)
    }
}
