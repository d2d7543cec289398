//! [`EventRecorder`] over core/v1 Events: one Event per distinct (experiment, type, reason,
//! message); a repeat bumps its `count` and `lastTimestamp` with a merge patch, as kubectl's
//! event aggregation expects.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use iter8_core::action::{Event, EventType};
use iter8_core::model::{API_VERSION, Experiment, KIND};
use iter8_core::ports::{EventRecorder, PortError};
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::error::{KubeError, is_not_found};

/// The `source.component` and `reportingComponent` of iter8's events.
pub const COMPONENT: &str = "iter8-controller";
/// How many distinct events are remembered for aggregation.
const REMEMBERED: usize = 4096;

/// Records experiments' events in the cluster.
pub struct KubeEvents {
    client: Client,
    instance: String,
    seen: Mutex<HashMap<(String, String), (String, i32)>>,
}

impl KubeEvents {
    /// A recorder reporting as `instance` (the pod name).
    pub fn new(client: Client, instance: impl Into<String>) -> KubeEvents {
        KubeEvents {
            client,
            instance: instance.into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records one event; returns the Event's name.
    pub async fn emit(&self, exp: &Experiment, event: &Event) -> Result<String, KubeError> {
        let ns = exp.namespace();
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), ns);
        let uid = exp
            .metadata
            .other
            .get("uid")
            .and_then(|u| u.as_str())
            .unwrap_or("")
            .to_string();
        let type_ = match event.type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let key = (
            format!("{ns}/{}/{uid}", exp.name()),
            format!("{type_}/{}/{}", event.reason, event.message),
        );
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(key, name.clone(), count + 1);
                    return Ok(name);
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(KubeError::api("patch", "Event", ns, name, e)),
            }
        }
        let name = format!(
            "{}.{:x}",
            exp.name(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let object = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": exp.name(),
                "namespace": ns,
                "uid": uid,
                "resourceVersion": exp.metadata.other.get("resourceVersion").cloned().unwrap_or_default(),
            },
            "reason": event.reason,
            "message": event.message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
        });
        let event: KubeEvent = serde_json::from_value(object).map_err(|e| KubeError::Json {
            what: "an Event".to_string(),
            message: e.to_string(),
        })?;
        api.create(&PostParams::default(), &event)
            .await
            .map_err(|e| KubeError::api("create", "Event", ns, name.clone(), e))?;
        self.remember(key, name.clone(), 1);
        Ok(name)
    }

    fn remember(&self, key: (String, String), name: String, count: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key, (name, count));
    }
}

#[async_trait]
impl EventRecorder for KubeEvents {
    async fn record(&self, experiment: &Experiment, event: &Event) -> Result<(), PortError> {
        self.emit(experiment, event).await?;
        Ok(())
    }
}
