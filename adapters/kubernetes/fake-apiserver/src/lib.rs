//! # iter8-fake-apiserver
//!
//! Test support: an in-memory Kubernetes API server on `127.0.0.1`, speaking the real REST
//! protocol, so that iter8's operator can run over a real `kube::Client` without a cluster.
//!
//! What it implements, for any resource (well-known ones get their real kind and scope):
//! get, list (label and `metadata.name`/`metadata.namespace` field selectors, `limit` and
//! `continue`), watch (`?watch=true` streaming JSON lines from a `resourceVersion`, or from now
//! with synthetic `ADDED` events, `sendInitialEvents` with the closing bookmark, `timeoutSeconds`),
//! create (`generateName`, 409 `AlreadyExists`), replace (409 `Conflict` on a stale
//! `resourceVersion`), JSON merge patch, JSON patch, strategic merge patch (as a merge patch, for
//! built-in types; 415 for custom resources as the real server), server-side apply (field
//! ownership per manager, 409 conflicts without `force`, removal of fields a manager stops
//! applying), the status subresource, `metadata.generation`, delete with finalizers and
//! `deletionTimestamp`, and 404/405/409/410/415/422/504 `Status` objects shaped as the real
//! server's. [`FakeApiServer::compact`] forgets the change history as etcd's compaction does,
//! so that a watch from an old resource version gets 410 `Expired`.
//!
//! Not implemented: schema validation and defaulting, admission, strategic merge patch list
//! merge keys, `managedFields` in objects (ownership is tracked, not shown), `DELETED`
//! events for objects that stop matching a watch's selector, waiting for a too-new resource
//! version, namespace existence checks, `deletecollection`, protobuf, discovery,
//! authentication.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod http;
pub mod patch;
pub mod select;
pub mod status;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::store::{Store, Write};

/// State shared by the request handlers.
pub struct Shared {
    store: Mutex<Store>,
    changes: broadcast::Sender<()>,
    stopping: watch::Sender<bool>,
    /// Bumped to end every running watch (clients then watch again, or list and watch).
    watch_restarts: watch::Sender<u64>,
    requests: Mutex<Vec<String>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        let _ = self.changes.send(());
    }

    fn log(&self, line: String) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

/// A running fake API server; [`FakeApiServer::stop`] ends it (dropping it aborts it).
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<FakeApiServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (changes, _) = broadcast::channel(4096);
        let (stopping, _) = watch::channel(false);
        let (watch_restarts, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changes,
            stopping,
            watch_restarts,
            requests: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let mut stop = shared.stopping.subscribe();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(FakeApiServer {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every watch, stops accepting connections and waits for the server to finish.
    pub async fn stop(mut self) {
        let _ = self.shared.stopping.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// An object as stored (`group` empty for the core group), if it exists.
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = store::resource(group, "v1", plural);
        self.shared.lock().get(&res, namespace, name).ok()
    }

    /// Every object of a resource in a namespace.
    pub fn objects(&self, group: &str, plural: &str, namespace: &str) -> Vec<Value> {
        let res = store::resource(group, "v1", plural);
        self.shared
            .lock()
            .list(&res, Some(namespace), &select::Filter::default())
    }

    /// Creates or updates an object directly (as server-side apply by `manager`), bypassing HTTP.
    pub fn apply(&self, object: &Value, manager: &str) -> Result<Value, status::ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or("v1");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = object["kind"].as_str().unwrap_or("");
        let plural = plural_of(kind);
        let res = store::resource(group, version, &plural);
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let out = self.shared.lock().patch(
            &res,
            ns,
            name,
            "apply",
            object,
            false,
            Write::Apply {
                manager,
                force: true,
            },
        );
        self.shared.notify();
        out
    }

    /// Compacts the change history (as etcd does): watches from an older resource version
    /// then get a 410 `Expired` error event; watches already running go on.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// Ends every running watch, as an API server restart (or a watch's timeout) does.
    pub fn end_watches(&self) {
        self.shared.watch_restarts.send_modify(|n| *n += 1);
    }

    /// The requests served so far (`METHOD /path?query`).
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.shared.stopping.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The plural of a kind as Kubernetes forms it for the kinds tests use.
pub fn plural_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|stem| !stem.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}
