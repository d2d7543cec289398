//! Test support: the kinds the operator uses, an HTTP client speaking to the fake API server
//! as kubectl and kube-rs do, and a watch reader.

#![allow(dead_code)]

use std::time::Duration;

use iter8_fake_apiserver::FakeApiServer;
use serde_json::{Value, json};

pub const NS: &str = "bookinfo-iter8";

/// One kind the operator reads or writes, with a field to change in tests.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub kind: &'static str,
    /// API group (`""` for core).
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// Has a status subresource.
    pub status: bool,
    /// Keeps `metadata.generation`.
    pub generation: bool,
    /// A delete answers with the object (`ReturnDeletedObject` in the real registry).
    pub returns_object: bool,
    /// JSON pointer of a field outside metadata and status the tests change.
    pub field: &'static str,
}

/// Experiments, Deployments, Services, ConfigMaps, VirtualServices, DestinationRules, Leases
/// and Events.
pub const KINDS: [Kind; 8] = [
    Kind {
        kind: "Experiment",
        group: "iter8.tools",
        version: "v1alpha1",
        plural: "experiments",
        status: true,
        generation: true,
        returns_object: false,
        field: "/spec/targetService/candidate",
    },
    Kind {
        kind: "Deployment",
        group: "apps",
        version: "v1",
        plural: "deployments",
        status: true,
        generation: true,
        returns_object: false,
        field: "/spec/template/metadata/labels/version",
    },
    Kind {
        kind: "Service",
        group: "",
        version: "v1",
        plural: "services",
        status: true,
        generation: false,
        returns_object: true,
        field: "/spec/selector/app",
    },
    Kind {
        kind: "ConfigMap",
        group: "",
        version: "v1",
        plural: "configmaps",
        status: false,
        generation: false,
        returns_object: false,
        field: "/data/metrics",
    },
    Kind {
        kind: "VirtualService",
        group: "networking.istio.io",
        version: "v1alpha3",
        plural: "virtualservices",
        status: true,
        generation: true,
        returns_object: false,
        field: "/spec/http/0/route/0/destination/host",
    },
    Kind {
        kind: "DestinationRule",
        group: "networking.istio.io",
        version: "v1alpha3",
        plural: "destinationrules",
        status: true,
        generation: true,
        returns_object: false,
        field: "/spec/host",
    },
    Kind {
        kind: "Lease",
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        status: false,
        generation: false,
        returns_object: false,
        field: "/spec/holderIdentity",
    },
    Kind {
        kind: "Event",
        group: "",
        version: "v1",
        plural: "events",
        status: false,
        generation: false,
        returns_object: false,
        field: "/message",
    },
];

impl Kind {
    /// `group/version` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` or `plural`, as messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The collection's path in `NS`.
    pub fn collection(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}/namespaces/{NS}/{}", self.version, self.plural)
        } else {
            format!(
                "/apis/{}/{}/namespaces/{NS}/{}",
                self.group, self.version, self.plural
            )
        }
    }

    /// An object's path.
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.collection())
    }

    /// The `details` of a `Status` about one object.
    pub fn details(&self, name: &str) -> Value {
        let mut d = json!({"name": name, "kind": self.plural});
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }

    /// A body with `value` at the kind's test field (intermediate arrays of one element).
    pub fn with_field(&self, value: &str) -> Value {
        let mut out = json!(value);
        for seg in self
            .field
            .split('/')
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            out = match seg.parse::<usize>() {
                Ok(_) => json!([out]),
                Err(_) => json!({ seg: out }),
            };
        }
        out
    }

    /// The least an apply sends: `apiVersion`, `kind`, the name and `value` at the test field.
    pub fn bare(&self, name: &str, value: &str) -> Value {
        let mut obj = self.with_field(value);
        obj["apiVersion"] = json!(self.api_version());
        obj["kind"] = json!(self.kind);
        obj["metadata"] = json!({"name": name});
        obj
    }

    /// [`Kind::object`] without a status, as a user applies it.
    pub fn applied(&self, name: &str, value: &str) -> Value {
        let mut obj = self.object(name, value);
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
        obj
    }

    /// A realistic object of this kind named `name`, with `value` at the test field and a
    /// status that create must drop (status subresource) or keep (no status).
    pub fn object(&self, name: &str, value: &str) -> Value {
        let mut obj = self.with_field(value);
        obj["apiVersion"] = json!(self.api_version());
        obj["kind"] = json!(self.kind);
        obj["metadata"] = json!({"name": name, "labels": {"app": "reviews"}});
        match self.kind {
            "Experiment" => {
                obj["spec"]["targetService"]["baseline"] = json!("reviews-v2");
                obj["spec"]["trafficControl"] = json!({"maxIterations": 8});
            }
            "Deployment" => {
                obj["spec"]["replicas"] = json!(1);
                obj["spec"]["selector"] = json!({"matchLabels": {"app": "reviews"}});
            }
            "Service" => obj["spec"]["ports"] = json!([{"port": 9080, "name": "http"}]),
            "ConfigMap" => obj["data"]["query_templates"] = json!("{}"),
            "VirtualService" => obj["spec"]["hosts"] = json!(["reviews"]),
            "DestinationRule" => {
                obj["spec"]["subsets"] = json!([{"name": "baseline", "labels": {"version": "v2"}}])
            }
            "Lease" => obj["spec"]["leaseDurationSeconds"] = json!(15),
            "Event" => {
                obj["reason"] = json!("IterationUpdate");
                obj["involvedObject"] = json!({"kind": "Experiment", "name": "reviews-v3-rollout"});
            }
            _ => {}
        }
        if self.status {
            obj["status"] = json!({"observedGeneration": 7});
        }
        obj
    }
}

/// A fake API server on 127.0.0.1 and a client of it (the server stops when dropped).
pub async fn start() -> (FakeApiServer, Api) {
    let server = FakeApiServer::start().await.unwrap();
    let api = Api::new(&server);
    (server, api)
}

/// The real server's `Status` body (k8s.io/apimachinery/pkg/api/errors) for a failure.
pub fn failure(code: u16, reason: &str, message: String, details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    })
}

/// The real server's `Status` body for a success (a delete that removed the object at once).
pub fn success(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

/// A JSON client of the fake API server.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// Status code and JSON body.
pub type Reply = (u16, Value);

impl Api {
    pub fn new(server: &FakeApiServer) -> Api {
        // In a workspace build reqwest is unified with the other crates' `rustls-no-provider`
        // feature, and then a client cannot be built until a crypto provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            base: server.url(),
            http: reqwest::Client::new(),
        }
    }

    /// One request and its whole answer, which must come within 10 s (watches, which go on,
    /// are read by [`Watch`] with their own deadlines).
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the fake answers");
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, body)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// PATCH with a content type (`application/merge-patch+json`, ...).
    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Reply {
        self.send(
            self.http
                .patch(format!("{}{path}", self.base))
                .header("Content-Type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn merge(&self, path: &str, body: &Value) -> Reply {
        self.patch(path, "application/merge-patch+json", body).await
    }

    /// Server-side apply as `manager` (`force` as `kubectl apply --server-side --force-conflicts`).
    pub async fn apply(&self, path: &str, manager: &str, force: bool, body: &Value) -> Reply {
        let query = format!("?fieldManager={manager}&force={force}");
        self.patch(
            &format!("{path}{query}"),
            "application/apply-patch+yaml",
            body,
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Starts a watch of the kind's collection from `obj`'s resourceVersion.
    pub async fn watch_from(&self, kind: &Kind, obj: &Value) -> Watch {
        self.watch(&kind.collection(), &format!("resourceVersion={}", rv(obj)))
            .await
    }

    /// Starts a watch (`query` without `watch=true`).
    pub async fn watch(&self, path: &str, query: &str) -> Watch {
        let sep = if query.is_empty() { "" } else { "&" };
        let resp = self
            .http
            .get(format!("{}{path}?watch=true{sep}{query}", self.base))
            .send()
            .await
            .expect("the fake answers");
        Watch {
            code: resp.status().as_u16(),
            resp,
            buf: Vec::new(),
        }
    }
}

/// A watch stream, read one JSON line (event) at a time.
pub struct Watch {
    pub code: u16,
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event (type, object), or `None` if the stream ends or nothing comes in
    /// `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let event: Value = serde_json::from_slice(&line).expect("a JSON event");
                return Some((event["type"].as_str()?.to_string(), event["object"].clone()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Whether the stream ends (the server closes it) within `wait` with no event before: false
    /// if an event comes or the stream merely stays quiet.
    pub async fn ended(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        matches!(
            tokio::time::timeout(wait, self.resp.chunk()).await,
            Ok(Ok(None))
        )
    }

    /// Every event until `wait` passes without one.
    pub async fn drain(&mut self, wait: Duration) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some(e) = self.next(wait).await {
            out.push(e);
        }
        out
    }
}

/// `metadata.resourceVersion` as a number.
pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}

/// The value at the kind's test field.
pub fn field<'a>(kind: &Kind, obj: &'a Value) -> &'a Value {
    obj.pointer(kind.field).unwrap_or(&Value::Null)
}
