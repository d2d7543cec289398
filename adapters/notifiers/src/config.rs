//! The `iter8config-notifiers` ConfigMap: each data key is a channel whose value is YAML:
//!
//! ```yaml
//! url: https://hooks.slack.com/services/T000/B000/XXXX
//! notifier: slack          # or `webhook`: a CloudEvents JSON POST
//! level: normal            # verbose | normal (default) | warning | error
//! namespace: bookinfo-iter8   # optional: only experiments in this namespace
//! labels:                  # optional: only experiments with all these labels
//!   team: reviews
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "iter8config-notifiers";

/// The least severity a channel is sent; events below it are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Everything (severity 1 and up).
    Verbose,
    /// Iteration results and up (severity 2), the default.
    Normal,
    /// Failed iterations, pauses and errors, and the end (severity 3).
    Warning,
    /// Only the end of experiments (severity 5).
    Error,
}

impl Level {
    /// The least severity sent at this level.
    pub fn min_severity(self) -> u8 {
        match self {
            Level::Verbose => 1,
            Level::Normal => 2,
            Level::Warning => 3,
            Level::Error => 5,
        }
    }

    fn parse(text: &str) -> Option<Level> {
        match text {
            "verbose" => Some(Level::Verbose),
            "normal" => Some(Level::Normal),
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// How a channel is posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierKind {
    /// A Slack incoming webhook (v0.2.1's payload).
    Slack,
    /// Any other receiver: a CloudEvents 1.0 event in structured mode.
    Webhook,
}

/// One channel of the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The data key naming it.
    pub name: String,
    /// Where to POST.
    pub url: reqwest::Url,
    /// The payload it gets.
    pub kind: NotifierKind,
    /// The least severity it gets.
    pub level: Level,
    /// Only experiments in this namespace, when set.
    pub namespace: Option<String>,
    /// Only experiments carrying all these labels.
    pub labels: BTreeMap<String, String>,
}

impl Channel {
    /// Whether an event of `severity` on an experiment in `namespace` with `labels` goes here.
    pub fn wants(&self, severity: u8, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        severity >= self.level.min_severity()
            && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A channel that could not be read: its key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{CONFIG_MAP} key `{key}`: {message}")]
pub struct ConfigError {
    /// The data key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
struct RawChannel {
    url: Option<String>,
    notifier: Option<String>,
    level: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads every channel of the ConfigMap's data; a bad channel is reported and skipped, the
/// others still work.
pub fn parse_channels(data: &BTreeMap<String, String>) -> (Vec<Channel>, Vec<ConfigError>) {
    let mut channels = Vec::new();
    let mut errors = Vec::new();
    for (key, text) in data {
        match parse_channel(key, text) {
            Ok(c) => channels.push(c),
            Err(message) => errors.push(ConfigError {
                key: key.clone(),
                message,
            }),
        }
    }
    (channels, errors)
}

fn parse_channel(key: &str, text: &str) -> Result<Channel, String> {
    let raw: RawChannel = serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let text = raw.url.ok_or("`url` is missing")?;
    let url = reqwest::Url::parse(&text).map_err(|e| format!("url `{text}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url `{text}`: only http and https are supported"));
    }
    let kind = match raw.notifier.as_deref() {
        Some("slack") => NotifierKind::Slack,
        Some("webhook") => NotifierKind::Webhook,
        Some(other) => {
            return Err(format!("notifier `{other}`: expected `slack` or `webhook`"));
        }
        None => return Err("`notifier` is missing (`slack` or `webhook`)".to_string()),
    };
    let level = match raw.level.as_deref() {
        None => Level::Normal,
        Some(text) => Level::parse(text)
            .ok_or_else(|| format!("level `{text}`: expected verbose, normal, warning or error"))?,
    };
    Ok(Channel {
        name: key.to_string(),
        url,
        kind,
        level,
        namespace: raw.namespace.filter(|ns| !ns.is_empty()),
        labels: raw.labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_channels_with_defaults_and_filters() {
        let (channels, errors) = parse_channels(&data(&[
            (
                "ops",
                "url: https://hooks.slack.com/services/T/B/X\nnotifier: slack\n",
            ),
            (
                "audit",
                "url: http://127.0.0.1:9000/events\nnotifier: webhook\nlevel: verbose\n\
                 namespace: bookinfo-iter8\nlabels:\n  team: reviews\n",
            ),
        ]));
        assert_eq!(errors, []);
        let audit = &channels[0];
        assert_eq!(audit.name, "audit");
        assert_eq!(audit.kind, NotifierKind::Webhook);
        assert_eq!(audit.level, Level::Verbose);
        let team = BTreeMap::from([("team".to_string(), "reviews".to_string())]);
        assert!(audit.wants(1, "bookinfo-iter8", &team));
        assert!(!audit.wants(5, "other", &team), "namespace filter");
        assert!(
            !audit.wants(5, "bookinfo-iter8", &BTreeMap::new()),
            "label filter"
        );
        let ops = &channels[1];
        assert_eq!((ops.kind, ops.level), (NotifierKind::Slack, Level::Normal));
        assert!(
            !ops.wants(1, "any", &BTreeMap::new()),
            "verbose dropped at normal"
        );
        assert!(ops.wants(2, "any", &BTreeMap::new()));
    }

    #[test]
    fn bad_channels_are_named_and_skipped() {
        let (channels, errors) = parse_channels(&data(&[
            ("a", "notifier: slack"),
            ("b", "url: ftp://x\nnotifier: slack"),
            ("c", "url: http://x\nnotifier: teams"),
            ("d", "url: http://x\nnotifier: slack\nlevel: loud"),
            ("e", "url: http://x\nnotifier: slack\nlevel: error"),
        ]));
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].level, Level::Error);
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "iter8config-notifiers key `a`: `url` is missing",
                "iter8config-notifiers key `b`: url `ftp://x`: only http and https are supported",
                "iter8config-notifiers key `c`: notifier `teams`: expected `slack` or `webhook`",
                "iter8config-notifiers key `d`: level `loud`: expected verbose, normal, warning or error",
            ]
        );
    }
}
