//! [`Notifier`]: the core's `EventRecorder` port over the configured channels. Recording only
//! filters and queues (a bounded queue; when it is full the notification is dropped and
//! logged), so a reconcile never waits on a receiver. One task posts each notification with a
//! timeout per attempt, a bounded number of retries, no redirects, and reads at most a few KiB
//! of an answer. A failed post is only logged, as in v0.2.1.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use iter8_core::action::Event;
use iter8_core::model::Experiment;
use iter8_core::ports::{EventRecorder, PortError};
use tokio::sync::mpsc;

use crate::config::{Channel, NotifierKind, parse_channels};
use crate::payload::Notification;

/// How the sender behaves.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Notifications waiting to be sent; more are dropped.
    pub queue: usize,
    /// The timeout of one POST (connect, send and answer).
    pub timeout: Duration,
    /// Attempts per notification and channel (the first one included).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            queue: 256,
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// The most of an answer's body read (for the log); the rest is not read.
const ANSWER_CAP: usize = 4096;

/// One notification to one channel.
struct Delivery {
    channel: Channel,
    notification: Notification,
}

/// Sends experiment events to the channels of the `iter8config-notifiers` ConfigMap.
#[derive(Clone)]
pub struct Notifier {
    channels: Arc<RwLock<Vec<Channel>>>,
    queue: mpsc::Sender<Delivery>,
}

impl Notifier {
    /// A notifier without channels, and its sender task (spawned on the current runtime).
    pub fn start(settings: SenderSettings) -> Result<Notifier, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("the notifiers' HTTP client: {e}"))?;
        let (queue, receiver) = mpsc::channel(settings.queue.max(1));
        tokio::spawn(send_all(http, settings, receiver));
        Ok(Notifier {
            channels: Arc::new(RwLock::new(Vec::new())),
            queue,
        })
    }

    /// Takes the ConfigMap's data as the channels (`None`: the ConfigMap is gone, no channels).
    /// Returns the problems of channels that could not be read (they are left out).
    pub fn configure(&self, data: Option<&BTreeMap<String, String>>) -> Vec<String> {
        let (channels, errors) = data.map(parse_channels).unwrap_or_default();
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        tracing::info!(channels = ?names, "notifier channels configured");
        for e in &errors {
            tracing::warn!(error = %e, "notifier channel ignored");
        }
        if let Ok(mut current) = self.channels.write() {
            *current = channels;
        }
        errors.iter().map(ToString::to_string).collect()
    }

    /// Queues `notification` for every channel that wants it; never waits.
    pub fn notify(&self, notification: &Notification) {
        let wanted: Vec<Channel> = match self.channels.read() {
            Ok(channels) => channels
                .iter()
                .filter(|c| {
                    c.wants(
                        notification.severity(),
                        &notification.namespace,
                        &notification.labels,
                    )
                })
                .cloned()
                .collect(),
            Err(_) => return,
        };
        for channel in wanted {
            let name = channel.name.clone();
            let delivery = Delivery {
                channel,
                notification: notification.clone(),
            };
            if self.queue.try_send(delivery).is_err() {
                tracing::warn!(
                    channel = %name,
                    reason = %notification.reason,
                    "notification dropped: the queue is full"
                );
            }
        }
    }
}

#[async_trait]
impl EventRecorder for Notifier {
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError> {
        self.notify(&Notification::new(experiment, event, Utc::now()));
        Ok(())
    }
}

/// The sender task: posts each queued delivery until every [`Notifier`] is dropped.
async fn send_all(
    http: reqwest::Client,
    settings: SenderSettings,
    mut receiver: mpsc::Receiver<Delivery>,
) {
    // CloudEvents ids: unique per event from this process.
    let mut sequence: u64 = 0;
    let started = Utc::now().timestamp_millis();
    while let Some(d) = receiver.recv().await {
        let (content_type, body) = match d.channel.kind {
            NotifierKind::Slack => ("application/json", d.notification.slack()),
            NotifierKind::Webhook => {
                sequence += 1;
                let id = format!("{started}-{sequence}");
                (
                    "application/cloudevents+json",
                    d.notification.cloud_event(&id),
                )
            }
        };
        post_with_retries(&http, &settings, &d, content_type, &body).await;
    }
}

async fn post_with_retries(
    http: &reqwest::Client,
    settings: &SenderSettings,
    d: &Delivery,
    content_type: &str,
    body: &serde_json::Value,
) {
    let mut wait = settings.backoff;
    for attempt in 1..=settings.attempts.max(1) {
        let outcome = post(http, d, content_type, body).await;
        match &outcome {
            Ok(()) => return,
            Err((message, retry)) => {
                let last = !retry || attempt == settings.attempts.max(1);
                tracing::warn!(
                    channel = %d.channel.name,
                    reason = %d.notification.reason,
                    attempt,
                    error = %message,
                    gave_up = last,
                    "notification not delivered"
                );
                if last {
                    return;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
}

/// One POST; an error says what happened and whether trying again may help (no answer, 429,
/// or a 5xx).
async fn post(
    http: &reqwest::Client,
    d: &Delivery,
    content_type: &str,
    body: &serde_json::Value,
) -> Result<(), (String, bool)> {
    let mut answer = http
        .post(d.channel.url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| (format!("POST {}: {e}", d.channel.url), true))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let mut text = Vec::new();
    while text.len() < ANSWER_CAP {
        match answer.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            _ => break,
        }
    }
    text.truncate(ANSWER_CAP);
    let retry = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    Err((
        format!(
            "POST {}: HTTP {status}: {}",
            d.channel.url,
            String::from_utf8_lossy(&text)
        ),
        retry,
    ))
}

/// Records every event with `inner` (for example as a Kubernetes Event) and also hands it to
/// the notifier; the result is `inner`'s.
pub struct AlsoNotify {
    inner: Arc<dyn EventRecorder>,
    notifier: Notifier,
}

impl AlsoNotify {
    /// `inner`, with every event also sent to `notifier`.
    pub fn new(inner: Arc<dyn EventRecorder>, notifier: Notifier) -> AlsoNotify {
        AlsoNotify { inner, notifier }
    }
}

#[async_trait]
impl EventRecorder for AlsoNotify {
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError> {
        let recorded = self.inner.record(experiment, event).await;
        self.notifier.record(experiment, event).await?;
        recorded
    }
}
