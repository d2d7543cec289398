//! A decision in the making: the new status, the actions and the wake-up, with the helpers
//! that keep phase, message and conditions consistent.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Decision;
use super::messages::{self, compose};
use crate::action::{Action, Event, EventType, RoutingAction};
use crate::model::{ConditionType, Experiment, ExperimentStatus, Phase};

/// The status being decided (a copy of the experiment's) and the actions so far.
pub(super) struct Draft<'a> {
    pub exp: &'a Experiment,
    pub now: DateTime<Utc>,
    pub status: ExperimentStatus,
    pub actions: Vec<Action>,
}

impl<'a> Draft<'a> {
    pub fn new(exp: &'a Experiment, now: DateTime<Utc>) -> Self {
        let mut status = exp.status.clone();
        status.create_timestamp.get_or_insert(now);
        Draft {
            exp,
            now,
            status,
            actions: Vec::new(),
        }
    }

    pub fn route(&mut self, action: RoutingAction) {
        self.actions.push(Action::Route(action));
    }

    pub fn set_message(&mut self, phase: Phase, reason: &str, text: &str) {
        self.status.phase = Some(phase);
        self.status.message = Some(compose(reason, text));
    }

    pub fn condition(&mut self, type_: ConditionType, ok: bool, reason: &str, message: &str) {
        let status = crate::model::ConditionStatus::from(ok);
        self.status
            .set_condition(type_, status, reason, message, self.now);
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
        let mut status = self.status;
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
