//! A decision in the making: the new status, the actions and the wake-up, with the helpers
//! that keep phase, message and conditions consistent.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Decision;
use super::messages::{self, compose, compose_into};
use crate::action::{Action, Event, EventType, RoutingAction};
use crate::analytics::AnalysisState;
use crate::model::{Assessment, ConditionType, Experiment, ExperimentStatus, Phase};

/// The status being decided, copied from the experiment's at the first change: the first call
/// of an iteration only asks for an analysis and changes nothing, so it copies nothing. The
/// copy's `assessment` and `analysis_state` start empty and are copied from the experiment's
/// in [`Draft::finish`] unless a decision replaced them: an iteration replaces both, and
/// copying them first would be wasted.
pub(super) struct Draft<'a> {
    pub exp: &'a Experiment,
    pub now: DateTime<Utc>,
    status: Option<ExperimentStatus>,
    pub actions: Vec<Action>,
    assessment_set: bool,
    analysis_state_set: bool,
}

/// The experiment's status to decide on, without its assessment and analysis state.
fn copy(exp: &Experiment, now: DateTime<Utc>) -> ExperimentStatus {
    let s = &exp.status;
    ExperimentStatus {
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
    }
}

impl<'a> Draft<'a> {
    pub fn new(exp: &'a Experiment, now: DateTime<Utc>) -> Self {
        Draft {
            exp,
            now,
            status: None,
            actions: Vec::new(),
            assessment_set: false,
            analysis_state_set: false,
        }
    }

    /// The status as decided so far: the experiment's until something changes. (Read only
    /// for what a copy holds alike: not the creation time, assessment or analysis state.)
    pub fn status(&self) -> &ExperimentStatus {
        self.status.as_ref().unwrap_or(&self.exp.status)
    }

    /// The status, to change: copied from the experiment's the first time.
    pub fn status_mut(&mut self) -> &mut ExperimentStatus {
        let (exp, now) = (self.exp, self.now);
        self.status.get_or_insert_with(|| copy(exp, now))
    }

    /// Records an analysis' verdict.
    pub fn set_assessment(&mut self, assessment: Assessment) {
        self.status_mut().assessment = Some(assessment);
        self.assessment_set = true;
    }

    /// Records the state the next analysis continues from.
    pub fn set_analysis_state(&mut self, state: AnalysisState) {
        self.status_mut().analysis_state = Some(state);
        self.analysis_state_set = true;
    }

    pub fn route(&mut self, action: RoutingAction) {
        self.actions.push(Action::Route(action));
    }

    pub fn set_message(&mut self, phase: Phase, reason: &str, text: &str) {
        let status = self.status_mut();
        status.phase = Some(phase);
        match &mut status.message {
            // Reuse the old message's buffer.
            Some(m) => compose_into(m, reason, text),
            None => status.message = Some(compose(reason, text)),
        }
    }

    pub fn condition(&mut self, type_: ConditionType, ok: bool, reason: &str, message: &str) {
        // Setting what is there already changes nothing (not even its transition time): no
        // copy of the status for that.
        let status = crate::model::ConditionStatus::from(ok);
        let unchanged = self
            .status()
            .condition(&type_)
            .is_some_and(|c| c.status == status && c.reason == reason && c.message == message);
        if !unchanged {
            let now = self.now;
            self.status_mut()
                .set_condition(type_, status, reason, message, now);
        }
    }

    /// Pauses with `Reason: text`, recording the failed condition if there is one.
    pub fn pause(&mut self, reason: &str, text: &str, failed: Option<ConditionType>) {
        self.set_message(Phase::Pause, reason, text);
        if let Some(c) = failed {
            self.condition(c, false, reason, text);
        }
    }

    /// Finishes the decision: `Ready`, events for a changed message, the wake-up.
    pub fn finish(self, requeue_after: Option<Duration>) -> Decision {
        let exp = self.exp;
        let mut status = self.status.unwrap_or_else(|| copy(exp, self.now));
        if !self.assessment_set {
            status.assessment = exp.status.assessment.clone();
        }
        if !self.analysis_state_set {
            status.analysis_state = exp.status.analysis_state.clone();
        }
        let ready = [
            ConditionType::TargetsProvided,
            ConditionType::MetricsSynced,
            ConditionType::AnalyticsServiceNormal,
            ConditionType::RoutingRulesReady,
        ]
        .iter()
        .all(|t| {
            status
                .condition(t)
                .is_some_and(|c| c.status == crate::model::ConditionStatus::True)
        });
        if !status.is_completed() {
            let msg = if ready {
                ""
            } else {
                "waiting for targets, metrics, analytics or routing"
            };
            status.set_condition(ConditionType::Ready, ready, "", msg, self.now);
        }
        let mut events = Vec::new();
        if status.message != exp.status.message
            && let Some(message) = &status.message
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
            status,
            actions: self.actions,
            events,
            requeue_after,
        }
    }
}
