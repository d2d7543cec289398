//! What a notification says, and its two bodies: Slack's (as iter8 v0.2.1 posted it) and a
//! CloudEvents 1.0 event in structured mode (for every other receiver).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use iter8_core::action::{Event, EventType};
use iter8_core::model::{Assessment, Experiment, TrafficSplit};
use serde_json::{Value, json};

/// The severity iter8 v0.2.1 gives an event reason (1 verbose … 5 the end of an experiment).
/// Reasons it did not have count as 4 for Warning events and 1 for Normal ones.
pub fn severity(reason: &str, type_: EventType) -> u8 {
    match reason {
        "ExperimentSucceeded" | "ExperimentFailed" => 5,
        "TargetsNotFound"
        | "SyncMetricsError"
        | "RoutingRulesError"
        | "AnalyticsServiceError"
        | "ActionPause" => 4,
        "IterationFailed" => 3,
        "IterationSucceeded" => 2,
        "TargetsFound"
        | "AnalyticsServiceRunning"
        | "IterationUpdate"
        | "SyncMetricsSucceeded"
        | "RoutingRulesReady" => 1,
        _ => match type_ {
            EventType::Warning => 4,
            EventType::Normal => 1,
        },
    }
}

/// One event of one experiment, with what a reader needs to know about the experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The experiment's name.
    pub experiment: String,
    /// Its namespace.
    pub namespace: String,
    /// Its labels (for the channels' label filters).
    pub labels: BTreeMap<String, String>,
    /// The event's reason (`ExperimentSucceeded`).
    pub reason: String,
    /// The event's message (the details).
    pub message: String,
    /// Normal or Warning.
    pub event_type: EventType,
    /// The traffic split the status shows.
    pub split: TrafficSplit,
    /// Iterations begun.
    pub iteration: u32,
    /// `maxIterations` (with its default).
    pub max_iterations: i64,
    /// Whether the experiment has ended (or this event ends it).
    pub completed: bool,
    /// The last analysis, as v0.2.1 summarised it.
    pub assessment: String,
    /// When the event was recorded.
    pub time: DateTime<Utc>,
}

impl Notification {
    /// The notification of `event` on `experiment` at `time`.
    pub fn new(experiment: &Experiment, event: &Event, time: DateTime<Utc>) -> Notification {
        let status = &experiment.status;
        let ends = matches!(
            event.reason.as_str(),
            "ExperimentSucceeded" | "ExperimentFailed"
        );
        Notification {
            experiment: experiment.name().to_string(),
            namespace: experiment.namespace().to_string(),
            labels: experiment.metadata.labels.clone(),
            reason: event.reason.clone(),
            message: event.message.clone(),
            event_type: event.type_,
            split: status.split(),
            iteration: status.current_iteration,
            max_iterations: experiment
                .spec
                .with_defaults()
                .traffic_control
                .max_iterations
                .unwrap_or_default(),
            completed: ends || status.is_completed(),
            assessment: summary(status.assessment.as_ref()),
            time,
        }
    }

    /// [`severity`] of the event's reason.
    pub fn severity(&self) -> u8 {
        severity(&self.reason, self.event_type)
    }

    /// `<experiment>.<namespace>`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.experiment, self.namespace)
    }

    /// The reason split into words: `ExperimentSucceeded` → `Experiment Succeeded`.
    pub fn reason_words(&self) -> String {
        let mut words = String::new();
        for (i, c) in self.reason.chars().enumerate() {
            if i > 0 && c.is_uppercase() {
                words.push(' ');
            }
            words.push(c);
        }
        words
    }

    fn traffic(&self) -> String {
        format!(
            "Baseline: {}  Candidate: {}",
            self.split.baseline, self.split.candidate
        )
    }

    fn progress(&self) -> String {
        if self.completed {
            "Experiment Completed".to_string()
        } else {
            format!(
                "Current Iteration: {}/{}",
                self.iteration, self.max_iterations
            )
        }
    }

    /// Slack's attachment colour: `warning` for a failed iteration, `danger` for other events
    /// of severity 3 and up (but a success), else `good`.
    fn color(&self) -> &'static str {
        if self.reason == "IterationFailed" {
            "warning"
        } else if self.severity() >= 3 && self.reason != "ExperimentSucceeded" {
            "danger"
        } else {
            "good"
        }
    }

    /// The body posted to a Slack incoming webhook.
    pub fn slack(&self) -> Value {
        let name = self.qualified_name();
        let words = self.reason_words();
        let mut section = format!("*{words}*\n{name}");
        if !self.message.is_empty() {
            section.push_str(&format!("\n_{}_", self.message));
        }
        json!({
            "text": format!("{name}: {words}"),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": section}}],
            "attachments": [{
                "color": self.color(),
                "fields": [
                    {"title": "Traffic", "value": self.traffic(), "short": false},
                    {"title": "Progress", "value": self.progress(), "short": false},
                    {"title": "Assessment", "value": self.assessment, "short": false},
                ],
            }],
        })
    }

    /// The CloudEvents 1.0 event (structured mode: POSTed as `application/cloudevents+json`).
    /// `id` must be unique per event from this source.
    pub fn cloud_event(&self, id: &str) -> Value {
        json!({
            "specversion": "1.0",
            "id": id,
            "source": format!("/apis/iter8.tools/v1alpha1/namespaces/{}/experiments/{}",
                              self.namespace, self.experiment),
            "type": format!("tools.iter8.experiment.{}", self.reason),
            "subject": self.qualified_name(),
            "time": self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "datacontenttype": "application/json",
            "data": {
                "experiment": self.experiment,
                "namespace": self.namespace,
                "reason": self.reason,
                "message": self.message,
                "eventType": match self.event_type {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                },
                "severity": self.severity(),
                "trafficSplitPercentage": {
                    "baseline": self.split.baseline,
                    "candidate": self.split.candidate,
                },
                "currentIteration": self.iteration,
                "maxIterations": self.max_iterations,
                "completed": self.completed,
                "assessment": self.assessment,
            },
        })
    }
}

/// v0.2.1's summary of an assessment: `Not Available`, or the conclusions and each criterion's.
fn summary(assessment: Option<&Assessment>) -> String {
    let Some(a) = assessment.filter(|a| !a.conclusions.is_empty()) else {
        return "Not Available".to_string();
    };
    let mut out = String::from("Summary:\n");
    for c in &a.conclusions {
        out.push_str(&format!("- {c}\n"));
    }
    out.push_str("Success Criteria Status:\n");
    for criterion in &a.success_criteria {
        out.push_str(&format!("- {}:\n  conclusions:\n", criterion.metric_name));
        for c in &criterion.conclusions {
            out.push_str(&format!("  - {c}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use iter8_core::model::CriterionAssessment;

    fn notification(reason: &str, type_: EventType, message: &str) -> Notification {
        Notification {
            experiment: "reviews-v3-rollout".into(),
            namespace: "bookinfo-iter8".into(),
            labels: BTreeMap::new(),
            reason: reason.into(),
            message: message.into(),
            event_type: type_,
            split: TrafficSplit::with_candidate(40),
            iteration: 2,
            max_iterations: 8,
            completed: false,
            assessment: "Not Available".into(),
            time: "2026-12-06T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn severities_are_v021s() {
        assert_eq!(severity("ExperimentSucceeded", EventType::Normal), 5);
        assert_eq!(severity("TargetsNotFound", EventType::Warning), 4);
        assert_eq!(severity("IterationFailed", EventType::Warning), 3);
        assert_eq!(severity("IterationSucceeded", EventType::Normal), 2);
        assert_eq!(severity("IterationUpdate", EventType::Normal), 1);
        assert_eq!(severity("ValidationError", EventType::Warning), 4);
        assert_eq!(severity("Resume", EventType::Normal), 1);
    }

    #[test]
    fn slack_payload_is_v021s() {
        let n = notification(
            "IterationSucceeded",
            EventType::Normal,
            "New Traffic, baseline: 60, candidate: 40",
        );
        assert_eq!(
            n.slack(),
            json!({
                "text": "reviews-v3-rollout.bookinfo-iter8: Iteration Succeeded",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                    "text": "*Iteration Succeeded*\nreviews-v3-rollout.bookinfo-iter8\n_New Traffic, baseline: 60, candidate: 40_"}}],
                "attachments": [{"color": "good", "fields": [
                    {"title": "Traffic", "value": "Baseline: 60  Candidate: 40", "short": false},
                    {"title": "Progress", "value": "Current Iteration: 2/8", "short": false},
                    {"title": "Assessment", "value": "Not Available", "short": false},
                ]}],
            })
        );
        let mut done = notification("ExperimentSucceeded", EventType::Normal, "");
        done.completed = true;
        let body = done.slack();
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "*Experiment Succeeded*\nreviews-v3-rollout.bookinfo-iter8"
        );
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(
            body["attachments"][0]["fields"][1]["value"],
            "Experiment Completed"
        );
        let colour =
            |reason, t| notification(reason, t, "").slack()["attachments"][0]["color"].clone();
        assert_eq!(colour("IterationFailed", EventType::Warning), "warning");
        assert_eq!(colour("ExperimentFailed", EventType::Warning), "danger");
        assert_eq!(colour("TargetsNotFound", EventType::Warning), "danger");
    }

    #[test]
    fn cloud_event_is_structured_mode() {
        let e = notification("ExperimentFailed", EventType::Warning, "Aborted").cloud_event("id-1");
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["id"], "id-1");
        assert_eq!(e["type"], "tools.iter8.experiment.ExperimentFailed");
        assert_eq!(
            e["source"],
            "/apis/iter8.tools/v1alpha1/namespaces/bookinfo-iter8/experiments/reviews-v3-rollout"
        );
        assert_eq!(e["time"], "2026-12-06T10:00:00.000Z");
        assert_eq!(e["data"]["severity"], 5);
        assert_eq!(e["data"]["trafficSplitPercentage"]["candidate"], 40);
    }

    #[test]
    fn the_assessment_is_summarised_as_v021_did() {
        let a = Assessment {
            conclusions: vec!["All success criteria were met".into()],
            success_criteria: vec![CriterionAssessment {
                metric_name: "iter8_latency".into(),
                conclusions: vec!["ok".into()],
                ..CriterionAssessment::default()
            }],
            ..Assessment::default()
        };
        assert_eq!(
            summary(Some(&a)),
            "Summary:\n- All success criteria were met\nSuccess Criteria Status:\n- iter8_latency:\n  conclusions:\n  - ok\n"
        );
        assert_eq!(summary(None), "Not Available");
    }
}
