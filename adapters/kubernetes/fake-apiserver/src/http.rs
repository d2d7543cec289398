//! The HTTP side: Kubernetes REST paths, verbs, query parameters, watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use crate::Shared;
use crate::select::Filter;
use crate::status::ApiError;
use crate::store::{self, Change, Resource, Write};

/// What a path names.
#[derive(Debug)]
struct Target {
    res: Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] => (Some(ns.to_string()), {
            let mut v = vec![*plural];
            v.extend_from_slice(more);
            v
        }),
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Target {
        res: store::resource(group, version, plural),
        namespace,
        name,
        subresource: sub,
    })
}

fn json_response(code: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.body())
}

fn parse_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    serde_saphyr::from_str(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Handles every request.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.log(format!("{method} {uri}"));
    if uri.path() == "/version" {
        return json_response(
            200,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-iter8-fake", "platform": "linux/amd64"}),
        );
    }
    let Some(target) = parse_path(uri.path()) else {
        return error_response(&ApiError::path_not_found());
    };
    match run(&shared, &method, &target, &query, &headers, &body) {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::Watch(since, filter)) => watch(shared, target, since, filter, &query),
        Err(e) => error_response(&e),
    }
}

enum Reply {
    Json(u16, Value),
    Watch(WatchStart, Filter),
}

/// Where a watch starts.
enum WatchStart {
    /// Synthetic `ADDED` events for what exists, then changes.
    Now { bookmark: bool },
    /// Changes after this resource version.
    After(u64),
    /// One `ERROR` event and the end: once a watch request is accepted, the real server
    /// reports a resource version it cannot serve inside the stream (HTTP 200).
    Fail(ApiError),
}

fn run(
    shared: &Shared,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    if t.res.namespaced && t.name.is_some() && t.namespace.is_none() {
        return Err(ApiError::bad_request(format!(
            "{} is namespaced: a namespace is required",
            t.res.qualified()
        )));
    }
    let manager = q.get("fieldManager").map(String::as_str).unwrap_or("");
    let status_only = match t.subresource.as_deref() {
        None => false,
        Some("status") if t.res.status_subresource => true,
        // The real server has no route for a subresource a resource lacks.
        Some(_) => return Err(ApiError::path_not_found()),
    };
    let mut st = shared.lock();
    match (method.clone(), &t.name) {
        (Method::GET, None) => {
            let filter = Filter::parse(
                q.get("labelSelector").map(String::as_str),
                q.get("fieldSelector").map(String::as_str),
            )
            .map_err(ApiError::bad_request)?;
            let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
            if watching {
                let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
                let initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
                let start = if rv.is_empty() || rv == "0" || initial {
                    WatchStart::Now { bookmark: initial }
                } else {
                    let rv: u64 = rv.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                    })?;
                    match st.changes_since(rv) {
                        Ok(_) => WatchStart::After(rv),
                        Err(e) => WatchStart::Fail(e),
                    }
                };
                return Ok(Reply::Watch(start, filter));
            }
            let mut items = st.list(&t.res, t.namespace.as_deref(), &filter);
            let offset: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0)
                .unwrap_or(usize::MAX);
            let total = items.len();
            items = items.into_iter().skip(offset).take(limit).collect();
            let mut meta = json!({"resourceVersion": st.resource_version().to_string()});
            if offset.saturating_add(limit) < total {
                meta["continue"] = json!((offset + limit).to_string());
                meta["remainingItemCount"] = json!(total - offset - limit);
            }
            Ok(Reply::Json(
                200,
                json!({
                    "apiVersion": t.res.api_version(),
                    "kind": format!("{}List", t.res.kind),
                    "metadata": meta,
                    "items": items,
                }),
            ))
        }
        (Method::GET, Some(name)) => Ok(Reply::Json(200, st.get(&t.res, ns, name)?)),
        (Method::POST, None) => {
            let obj = parse_body(body)?;
            let created = st.create(&t.res, ns, obj, Write::Update(manager))?;
            drop(st);
            shared.notify();
            Ok(Reply::Json(201, created))
        }
        (Method::PUT, Some(name)) => {
            let obj = parse_body(body)?;
            let out = st.replace(&t.res, ns, name, obj, status_only, manager)?;
            drop(st);
            shared.notify();
            Ok(Reply::Json(200, out))
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = match content_type.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => "merge",
                "application/strategic-merge-patch+json"
                    if t.res.group.contains('.') && !t.res.group.ends_with("k8s.io") =>
                {
                    return Err(ApiError::unsupported_media_type(content_type));
                }
                "application/strategic-merge-patch+json" => "strategic",
                "application/json-patch+json" => "json",
                "application/apply-patch+yaml" | "application/apply-patch+json" => "apply",
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let patch = parse_body(body)?;
            let write = if kind == "apply" {
                if manager.is_empty() {
                    return Err(ApiError::apply_needs_field_manager());
                }
                Write::Apply {
                    manager,
                    force: q.get("force").is_some_and(|f| f == "true"),
                }
            } else {
                Write::Update(manager)
            };
            let existed = st.get(&t.res, ns, name).is_ok();
            let out = st.patch(&t.res, ns, name, kind, &patch, status_only, write)?;
            drop(st);
            shared.notify();
            Ok(Reply::Json(if existed { 200 } else { 201 }, out))
        }
        (Method::DELETE, Some(name)) => {
            let out = st.delete(&t.res, ns, name)?;
            drop(st);
            shared.notify();
            Ok(Reply::Json(200, out))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn matches(change: &Change, res: &Resource, ns: Option<&str>, filter: &Filter) -> bool {
    change.group == res.group
        && change.plural == res.plural
        && ns.is_none_or(|ns| ns == change.namespace)
        && filter.matches(&change.object)
}

/// A watch: JSON lines, one per event, until the timeout, the client leaves or the server stops.
fn watch(
    shared: Arc<Shared>,
    t: Target,
    start: WatchStart,
    filter: Filter,
    q: &HashMap<String, String>,
) -> Response {
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let receiver = shared.changes.subscribe();
    let mut stopping = shared.stopping.subscribe();
    let mut restarts = shared.watch_restarts.subscribe();
    restarts.borrow_and_update();
    let (initial, mut last_rv) = {
        let st = shared.lock();
        let rv = st.resource_version();
        match start {
            WatchStart::Now { bookmark } => {
                let mut lines: Vec<Bytes> = st
                    .list(&t.res, t.namespace.as_deref(), &filter)
                    .iter()
                    .map(|o| event_line("ADDED", o))
                    .collect();
                if bookmark {
                    lines.push(event_line(
                        "BOOKMARK",
                        &json!({
                            "apiVersion": t.res.api_version(),
                            "kind": t.res.kind,
                            "metadata": {
                                "resourceVersion": rv.to_string(),
                                "annotations": {"k8s.io/initial-events-end": "true"}
                            }
                        }),
                    ));
                }
                (lines, rv)
            }
            WatchStart::Fail(e) => {
                let line = event_line("ERROR", &e.body());
                let stream = futures::stream::iter([Ok::<Bytes, Infallible>(line)]);
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(stream),
                )
                    .into_response();
            }
            WatchStart::After(since) => {
                let lines = st
                    .changes_after(since)
                    .iter()
                    .filter(|c| matches(c, &t.res, t.namespace.as_deref(), &filter))
                    .map(|c| event_line(c.kind, &c.object))
                    .collect();
                (lines, rv)
            }
        }
    };
    let state = shared.clone();
    let live = BroadcastStream::new(receiver).flat_map(move |_| {
        // Each notification: send what changed since the last line sent.
        let st = state.lock();
        let changes = st.changes_after(last_rv);
        last_rv = st.resource_version();
        let lines: Vec<Result<Bytes, Infallible>> = changes
            .iter()
            .filter(|c| matches(c, &t.res, t.namespace.as_deref(), &filter))
            .map(|c| Ok(event_line(c.kind, &c.object)))
            .collect();
        futures::stream::iter(lines)
    });
    let end = async move {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(timeout)) => {}
            _ = stopping.wait_for(|s| *s) => {}
            _ = restarts.changed() => {}
        }
    };
    let stream = futures::stream::iter(initial.into_iter().map(Ok::<Bytes, Infallible>))
        .chain(live)
        .take_until(end);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
