//! A decision in the making: the new status, the actions and the wake-up, with the helpers
//! that keep phase, message and conditions consistent.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Decision;
use super::messages::{self, compose, compose_into};
use crate::action::{Action, Event, EventType, RoutingAction};
use crate::analytics::AnalysisState;
use crate::model::{Assessment, ConditionType, Experiment, ExperimentStatus, Phase};

/// The status being decided. Its `assessment` and `analysis_state` start empty and are copied
/// from the experiment's in [`Draft::finish`] unless a decision replaced them: an iteration
/// replaces both, and copying them first would be wasted.
pub(super) struct Draft<'a> {
    pub exp: &'a Experiment,
    pub now: DateTime<Utc>,
    pub status: ExperimentStatus,
    pub actions: Vec<Action>,
    assessment_set: bool,
    analysis_state_set: bool,
}

impl<'a> Draft<'a> {
    pub fn new(exp: &'a Experiment, now: DateTime<Utc>) -> Self {
        let s = &exp.status;
        let status = ExperimentStatus {
            phase: s.phase.clone(),
            message: s.message.clone(),
            conditions: s.conditions.clone(),
            create_timestamp: Some(s.create_timestamp.unwrap_or(now)),
            start_timestamp: s.start_timestamp,
            end_timestamp: s.end_timestamp,
            last_increment_time: s.last_increment_time,
            current_iteration: s.current_iteration,
            traffic_split_percentage: s.traffic_split_percentage,
            assessment: None,
            analysis_state: None,
            grafana_url: s.grafana_url.clone(),
        };
        Draft {
            exp,
            now,
            status,
            actions: Vec::new(),
            assessment_set: false,
            analysis_state_set: false,
        }
    }

    /// Records an analysis' verdict.
    pub fn set_assessment(&mut self, assessment: Assessment) {
        self.status.assessment = Some(assessment);
        self.assessment_set = true;
    }

    /// Records the state the next analysis continues from.
    pub fn set_analysis_state(&mut self, state: AnalysisState) {
        self.status.analysis_state = Some(state);
        self.analysis_state_set = true;
    }

    pub fn route(&mut self, action: RoutingAction) {
        self.actions.push(Action::Route(action));
    }

    pub fn set_message(&mut self, phase: Phase, reason: &str, text: &str) {
        self.status.phase = Some(phase);
        match &mut self.status.message {
            // Reuse the old message's buffer.
            Some(m) => compose_into(m, reason, text),
            None => self.status.message = Some(compose(reason, text)),
        }
    }

    pub fn condition(&mut self, type_: ConditionType, ok: bool, reason: &str, message: &str) {
        self.status
            .set_condition(type_, ok, reason, message, self.now);
    }

    /// Pauses with `Reason: text`, recording the failed condition if there is one.
    pub fn pause(&mut self, reason: &str, text: &str, failed: Option<ConditionType>) {
        self.set_message(Phase::Pause, reason, text);
        if let Some(c) = failed {
            self.condition(c, false, reason, text);
        }
    }

    /// Finishes the decision: `Ready`, events for a changed message, the wake-up.
    pub fn finish(mut self, requeue_after: Option<Duration>) -> Decision {
        if !self.assessment_set {
            self.status.assessment = self.exp.status.assessment.clone();
        }
        if !self.analysis_state_set {
            self.status.analysis_state = self.exp.status.analysis_state.clone();
        }
        let ready = [
            ConditionType::TargetsProvided,
            ConditionType::MetricsSynced,
            ConditionType::AnalyticsServiceNormal,
            ConditionType::RoutingRulesReady,
        ]
        .iter()
        .all(|t| {
            self.status
                .condition(t)
                .is_some_and(|c| c.status == crate::model::ConditionStatus::True)
        });
        if !self.status.is_completed() {
            let msg = if ready {
                ""
            } else {
                "waiting for targets, metrics, analytics or routing"
            };
            self.condition(ConditionType::Ready, ready, "", msg);
        }
        let mut events = Vec::new();
        if self.status.message != self.exp.status.message
            && let Some(message) = &self.status.message
        {
            let (reason, text) = messages::split(message);
            let type_ = if messages::WARNING_REASONS.contains(&reason) {
                EventType::Warning
            } else {
                EventType::Normal
            };
            events.push(Event {
                type_,
                reason: reason.to_string(),
                message: if text.is_empty() {
                    reason.to_string()
                } else {
                    text.to_string()
                },
            });
        }
        Decision {
            status: self.status,
            actions: self.actions,
            events,
            requeue_after,
        }
    }
}
