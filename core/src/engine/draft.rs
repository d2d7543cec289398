//! A decision in the making: the new status, the actions and the wake-up, with the helpers
//! that keep phase, message and conditions consistent.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Decision;
use super::messages::{self, compose};
use crate::action::{Action, Event, EventType, RoutingAction};
use crate::model::{ConditionType, Experiment, ExperimentStatus, Phase};

/// The status being decided (a copy of the experiment's), the actions and the events so far.
pub(super) struct Draft<'a> {
    pub exp: &'a Experiment,
    pub now: DateTime<Utc>,
    pub status: ExperimentStatus,
    pub actions: Vec<Action>,
    /// Events besides those [`Draft::finish`] derives from the conditions and the message.
    pub events: Vec<Event>,
}

/// The conditions whose turn to `True` v0.2.1 records as an event, with that event's reason,
/// in the order its controller checks them.
const TURNED_TRUE_EVENTS: [(ConditionType, &str); 4] = [
    (
        ConditionType::MetricsSynced,
        messages::SYNC_METRICS_SUCCEEDED,
    ),
    (ConditionType::TargetsProvided, messages::TARGETS_FOUND),
    (
        ConditionType::RoutingRulesReady,
        messages::ROUTING_RULES_READY,
    ),
    (
        ConditionType::AnalyticsServiceNormal,
        messages::ANALYTICS_SERVICE_RUNNING,
    ),
];

impl<'a> Draft<'a> {
    pub fn new(exp: &'a Experiment, now: DateTime<Utc>) -> Self {
        let mut status = exp.status.clone();
        status.create_timestamp.get_or_insert(now);
        Draft {
            exp,
            now,
            status,
            actions: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Records an event (`text` empty: the reason is the message, as for status messages).
    pub fn event(&mut self, reason: &str, text: &str) {
        self.events.push(event(reason, text));
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
        // As v0.2.1: an event when a condition turns true, then the decision's own events, then
        // one for a changed status message.
        let is_true = |s: &ExperimentStatus, t: &ConditionType| {
            s.condition(t)
                .is_some_and(|c| c.status == crate::model::ConditionStatus::True)
        };
        let mut events: Vec<Event> = TURNED_TRUE_EVENTS
            .iter()
            .filter(|(t, _)| is_true(&status, t) && !is_true(&exp.status, t))
            .map(|(_, reason)| event(reason, ""))
            .collect();
        events.extend(self.events);
        if status.message != exp.status.message
            && let Some(message) = &status.message
        {
            let (reason, text) = messages::split(message);
            events.push(event(reason, text));
        }
        Decision {
            status,
            actions: self.actions,
            events,
            requeue_after,
        }
    }
}

/// An event with `reason` and `text` (the reason when `text` is empty), a Warning for the
/// reasons in [`messages::WARNING_REASONS`].
fn event(reason: &str, text: &str) -> Event {
    let type_ = if messages::WARNING_REASONS.contains(&reason) {
        EventType::Warning
    } else {
        EventType::Normal
    };
    Event {
        type_,
        reason: reason.to_string(),
        message: if text.is_empty() {
            reason.to_string()
        } else {
            text.to_string()
        },
    }
}
