//! Objects as JSON through a client: one object, a namespace's objects of a kind, and every
//! version of one object recorded by a watch started before it changes (a real API server
//! keeps no history a test could replay afterwards).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde_json::Value;

/// How long one read may take before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The resource of `api_version` (`v1`, `apps/v1`, `iter8.tools/v1alpha1`) and `plural`.
fn resource(api_version: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: api_version.to_string(),
        // Paths use the plural only; the objects read carry their own kind.
        kind: String::new(),
        plural: plural.to_string(),
    }
}

fn api(client: &kube::Client, api_version: &str, plural: &str, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource(api_version, plural))
}

fn to_json(object: DynamicObject) -> Value {
    serde_json::to_value(object).expect("an object serializes")
}

/// Object `ns/name` of `api_version` and `plural` (e.g. `"iter8.tools/v1alpha1",
/// "experiments"`) as JSON; `None` if it does not exist.
pub async fn object(
    client: &kube::Client,
    api_version: &str,
    plural: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let api = api(client, api_version, plural, ns);
    match tokio::time::timeout(READ_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(found)) => found.map(to_json),
        Ok(Err(e)) => panic!("GET {api_version} {plural} {ns}/{name}: {e}"),
        Err(_) => panic!("GET {api_version} {plural} {ns}/{name}: no answer in {READ_TIMEOUT:?}"),
    }
}

/// Every object of `api_version` and `plural` in `ns`, as JSON.
pub async fn objects(
    client: &kube::Client,
    api_version: &str,
    plural: &str,
    ns: &str,
) -> Vec<Value> {
    let api = api(client, api_version, plural, ns);
    match tokio::time::timeout(READ_TIMEOUT, api.list(&ListParams::default())).await {
        Ok(Ok(list)) => list.items.into_iter().map(to_json).collect(),
        Ok(Err(e)) => panic!("LIST {api_version} {plural} in {ns}: {e}"),
        Err(_) => panic!("LIST {api_version} {plural} in {ns}: no answer in {READ_TIMEOUT:?}"),
    }
}

/// Every version of one object the API server stored from the moment [`History::start`]
/// returned: a list, then a watch from the list's resourceVersion, restarted from the last
/// version seen whenever it ends. Stops when dropped.
pub struct History {
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl History {
    /// Records object `ns/name` of `api_version` and `plural` (it need not exist yet).
    pub async fn start(
        client: &kube::Client,
        api_version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> History {
        let api = api(client, api_version, plural, ns);
        let selector = format!("metadata.name={name}");
        let list = tokio::time::timeout(
            READ_TIMEOUT,
            api.list(&ListParams::default().fields(&selector)),
        )
        .await
        .expect("the list answers")
        .expect("the list succeeds");
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        let seen = Arc::new(Mutex::new(
            list.items.into_iter().map(to_json).collect::<Vec<_>>(),
        ));
        let record = seen.clone();
        let what = format!("{api_version} {plural} {ns}/{name}");
        let task = tokio::spawn(async move {
            let params = WatchParams::default().fields(&selector).timeout(290);
            loop {
                let stream = match api.watch(&params, &version).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        eprintln!("watching {what}: {e}; again in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mut stream = std::pin::pin!(stream);
                while let Ok(Some(event)) = stream.try_next().await {
                    match event {
                        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                            if let Some(v) = &o.metadata.resource_version {
                                version = v.clone();
                            }
                            record.lock().expect("not poisoned").push(to_json(o));
                        }
                        WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                        // 410 Gone: versions were lost; a test reading this history would
                        // judge from a partial one, so say so loudly.
                        WatchEvent::Error(e) => panic!("watching {what}: {e:?}"),
                    }
                }
            }
        });
        History { seen, task }
    }

    /// The versions recorded so far, oldest first.
    pub fn objects(&self) -> Vec<Value> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.task.abort();
    }
}
