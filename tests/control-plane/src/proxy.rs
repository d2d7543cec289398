//! A fault-injecting proxy between a client and the API server, for the faults a healthy API
//! server does not make on its own: 500s, 429s with `Retry-After`, 403s, slow answers and
//! dropped watches. The client speaks plain HTTP to the proxy on 127.0.0.1 (its bearer token
//! passes through untouched); the proxy speaks TLS to the API server, trusting the control
//! plane's CA.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use futures_util::StreamExt;
use tokio::sync::watch;

/// What the proxy does to the next requests.
#[derive(Debug, Default)]
struct Faults {
    /// Answer this many of the next requests that are not watches with (status, Retry-After).
    fail: Option<(u32, u16, Option<u64>)>,
    /// Hold every request this long before forwarding it.
    delay: Duration,
    /// Requests seen, by verb (`GET`, `WATCH`, `PATCH`, ...).
    seen: BTreeMap<String, u64>,
    /// Requests answered with an injected fault, by status.
    injected: BTreeMap<u16, u64>,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    url: String,
    faults: Arc<Mutex<Faults>>,
    /// Bumped to end every watch in flight.
    drop_watches: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts on 127.0.0.1, forwarding to `upstream` (the API server's URL) whose certificate
    /// `ca_pem` signs.
    pub async fn start(upstream: &str, ca_pem: &[u8]) -> FaultProxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("a CA in PEM"))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("client builds");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (drop_watches, dropped) = watch::channel(0u64);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let state = Shared {
            http,
            upstream: upstream.trim_end_matches('/').to_string(),
            faults: faults.clone(),
            dropped,
        };
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let state = state.clone();
            async move { forward(state, req).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            url,
            faults,
            drop_watches,
            task,
        }
    }

    /// The proxy's URL, for a kubeconfig's `server`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers the next `n` requests that are not watches with `status` (and `Retry-After:
    /// secs` when given).
    pub fn fail_next(&self, n: u32, status: u16, retry_after: Option<u64>) {
        self.faults.lock().expect("not poisoned").fail = Some((n, status, retry_after));
    }

    /// Whether injected failures are still pending.
    pub fn failing(&self) -> bool {
        self.faults.lock().expect("not poisoned").fail.is_some()
    }

    /// Holds every request `delay` before forwarding it (zero: no delay).
    pub fn slow(&self, delay: Duration) {
        self.faults.lock().expect("not poisoned").delay = delay;
    }

    /// Ends every watch in flight, as a connection reset would.
    pub fn drop_watches(&self) {
        self.drop_watches.send_modify(|n| *n += 1);
    }

    /// Requests seen so far by verb (`WATCH` for `?watch=true` GETs).
    pub fn seen(&self) -> BTreeMap<String, u64> {
        self.faults.lock().expect("not poisoned").seen.clone()
    }

    /// Faults injected so far, by status.
    pub fn injected(&self) -> BTreeMap<u16, u64> {
        self.faults.lock().expect("not poisoned").injected.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    http: reqwest::Client,
    upstream: String,
    faults: Arc<Mutex<Faults>>,
    dropped: watch::Receiver<u64>,
}

fn status_body(code: u16, message: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "code": code,
    })
    .to_string()
}

async fn forward(state: Shared, req: Request<Body>) -> Response<Body> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let is_watch = path_and_query.contains("watch=true") || path_and_query.contains("watch=1");
    let verb = if is_watch {
        "WATCH".to_string()
    } else {
        req.method().as_str().to_string()
    };
    let (injected, delay) = {
        let mut f = state.faults.lock().expect("not poisoned");
        *f.seen.entry(verb).or_default() += 1;
        let injected = match f.fail {
            Some((n, status, retry_after)) if !is_watch => {
                f.fail = (n > 1).then_some((n - 1, status, retry_after));
                *f.injected.entry(status).or_default() += 1;
                Some((status, retry_after))
            }
            _ => None,
        };
        (injected, f.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, retry_after)) = injected {
        let mut response = Response::new(Body::from(status_body(
            status,
            "injected by the test proxy",
        )));
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        return response;
    }

    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body over 16 MiB");
    };
    let mut request = state
        .http
        .request(parts.method, format!("{}{path_and_query}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_GATEWAY, &format!("upstream: {e}")),
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    let headers: &HeaderMap = upstream.headers();
    for (name, value) in headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response = response.header(name, value);
        }
    }
    let stream = upstream.bytes_stream();
    let body = if is_watch {
        // A watch ends when the test says so, as if the connection had been reset.
        let mut dropped = state.dropped.clone();
        dropped.mark_unchanged();
        let ended = async move {
            let _ = dropped.changed().await;
        };
        Body::from_stream(stream.take_until(Box::pin(ended)))
    } else {
        Body::from_stream(stream)
    };
    response
        .body(body)
        .unwrap_or_else(|_| error(StatusCode::BAD_GATEWAY, "bad upstream response"))
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(status_body(status.as_u16(), message)));
    *response.status_mut() = status;
    response
}
