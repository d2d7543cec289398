//! Following one ConfigMap live (the operator follows `iter8config-notifiers` this way): its
//! data once the watch has listed, and again after every change; `None` while it does not exist.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// Calls `on_change` with the ConfigMap's data at start and on every change, until the watch
/// ends (it retries with backoff on errors, so only when the process stops).
pub async fn follow_config_map(
    client: Client,
    namespace: &str,
    name: &str,
    on_change: impl Fn(Option<&BTreeMap<String, String>>),
) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut listed: Option<ConfigMap> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed = None,
            Ok(watcher::Event::InitApply(cm)) => listed = Some(cm),
            Ok(watcher::Event::InitDone) => {
                on_change(listed.as_ref().map(data).as_ref());
            }
            Ok(watcher::Event::Apply(cm)) => on_change(Some(&data(&cm))),
            Ok(watcher::Event::Delete(_)) => on_change(None),
            Err(e) => tracing::warn!(namespace, name, error = %e, "watching the ConfigMap"),
        }
    }
}

/// A ConfigMap's data (string values; binary data is not read).
fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}
