//! A scriptable fake Prometheus: an HTTP/1.1 server on 127.0.0.1:0 that answers from a script
//! (replies in order, the last one repeated), from a function of the request, or with Istio
//! telemetry per version ([`crate::telemetry`]); records every request, and counts how many it
//! served at once. An outage ([`FakePrometheus::fail_with`]) overrides any of them. Dropping it
//! stops the server and every connection it holds.
//!
//! It reads request heads only (Prometheus' instant queries are `GET`s) and answers with a JSON
//! content type; connections are kept alive, as Prometheus does, unless the client sends
//! `Connection: close`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::telemetry::{Behaviour, Telemetry};

/// What the fake does with one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Answers with this status and body (JSON content type), after `delay`.
    Http {
        /// Status code.
        status: u16,
        /// Body.
        body: String,
        /// Pause before answering.
        delay: Duration,
    },
    /// Reads the request and never answers.
    Hang,
    /// Closes the connection without answering.
    Close,
}

impl Reply {
    /// An immediate answer.
    pub fn http(status: u16, body: impl Into<String>) -> Reply {
        Reply::Http {
            status,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// An immediate answer with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::http(status, body.to_string())
    }

    /// The same answer after `delay`.
    pub fn after(self, delay: Duration) -> Reply {
        match self {
            Reply::Http { status, body, .. } => Reply::Http {
                status,
                body,
                delay,
            },
            other => other,
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request line and headers, as received.
    pub head: String,
    /// The path, without the query string (`/api/v1/query`).
    pub path: String,
    /// The `query` parameter, decoded (the PromQL of an instant query).
    pub query: Option<String>,
}

impl Request {
    fn parse(head: String) -> Request {
        let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let (path, params) = target.split_once('?').unwrap_or((&target, ""));
        let query = form_urlencoded::parse(params.as_bytes())
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.into_owned());
        Request {
            path: path.to_string(),
            query,
            head,
        }
    }
}

/// The path of Prometheus' instant queries.
const INSTANT_QUERY: &str = "/api/v1/query";

type Answer = Box<dyn Fn(&Request) -> Reply + Send + Sync>;

enum Script {
    /// Replies in order; the last one is repeated.
    Replies {
        next: VecDeque<Reply>,
        last: Option<Reply>,
    },
    /// A reply computed from each request.
    Function(Answer),
    /// Istio telemetry of the versions added with [`FakePrometheus::set`].
    PerVersion(Telemetry),
}

struct State {
    script: Script,
    /// While set, every request is answered with this HTTP status (an outage).
    outage: Option<u16>,
    /// While set, every request is answered 200 with a body that is not JSON.
    garbage: bool,
    requests: Vec<Request>,
    in_flight: usize,
    max_in_flight: usize,
}

impl State {
    fn reply(&mut self, request: &Request) -> Reply {
        if let Some(status) = self.outage {
            let body = serde_json::json!({
                "status": "error", "errorType": "internal", "error": "injected outage"
            });
            return Reply::json(status, &body);
        }
        if self.garbage {
            return Reply::http(200, "<html>502 Bad Gateway</html>");
        }
        match &mut self.script {
            Script::Function(answer) => answer(request),
            Script::PerVersion(telemetry) => match &request.query {
                Some(promql) if request.path == INSTANT_QUERY => {
                    Reply::json(200, &telemetry.answer(promql))
                }
                _ => Reply::http(404, "{}"),
            },
            Script::Replies { next, last } => {
                if let Some(reply) = next.pop_front() {
                    *last = Some(reply);
                }
                last.clone()
                    .unwrap_or_else(|| Reply::http(500, "the fake's script is empty"))
            }
        }
    }
}

/// A running fake Prometheus; stopped (with all its connections) when dropped.
pub struct FakePrometheus {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl FakePrometheus {
    /// A fake that plays `replies` in order, then repeats the last one.
    pub async fn scripted(replies: Vec<Reply>) -> FakePrometheus {
        Self::start(Script::Replies {
            next: replies.into(),
            last: None,
        })
        .await
    }

    /// A fake that answers each request with `answer(request)`.
    pub async fn answering(
        answer: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FakePrometheus {
        Self::start(Script::Function(Box::new(answer))).await
    }

    /// A fake that answers every instant query (`/api/v1/query`) with `answer(promql)` and any
    /// other path with 404.
    pub async fn queries_answered_by(
        answer: impl Fn(&str) -> (u16, serde_json::Value) + Send + Sync + 'static,
    ) -> FakePrometheus {
        Self::answering(move |request| match &request.query {
            Some(promql) if request.path == INSTANT_QUERY => {
                let (status, body) = answer(promql);
                Reply::json(status, &body)
            }
            _ => Reply::http(404, "{}"),
        })
        .await
    }

    /// A fake that answers the stock and extended Istio telemetry-v2 queries with one series per
    /// version of `namespace` (see [`crate::telemetry`]); versions are added with
    /// [`FakePrometheus::set`].
    pub async fn per_version(namespace: &str) -> FakePrometheus {
        Self::start(Script::PerVersion(Telemetry::new(namespace))).await
    }

    async fn start(script: Script) -> FakePrometheus {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Prometheus on 127.0.0.1");
        let addr = listener.local_addr().expect("the fake's address");
        let state = Arc::new(Mutex::new(State {
            script,
            outage: None,
            garbage: false,
            requests: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
        }));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            // The connections live in this set: aborting the server drops it, which aborts them.
            let mut connections = JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                connections.spawn(serve(conn, shared.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        FakePrometheus {
            addr,
            state,
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .map(|r| r.head.clone())
            .collect()
    }

    /// The PromQL of the instant queries received so far.
    pub fn queries(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter_map(|r| r.query.clone())
            .collect()
    }

    /// Adds a version to a [`FakePrometheus::per_version`] fake (its requests count from now
    /// on, after [`crate::telemetry::WARM_UP`]), or changes a known version's behaviour from the
    /// next query on. Panics on a fake started otherwise: its answers are scripted.
    pub fn set(&self, version: &str, behaviour: Behaviour) {
        match &mut self.state().script {
            Script::PerVersion(telemetry) => telemetry.set(version, behaviour),
            _ => panic!("FakePrometheus::set needs a fake started with per_version"),
        }
    }

    /// Answers every request with HTTP `status` and Prometheus' error body from now on (an
    /// outage); `None` ends the outage.
    pub fn fail_with(&self, status: Option<u16>) {
        self.state().outage = status;
    }

    /// Answers every request 200 with a body that is not JSON (a proxy's error page);
    /// `false` answers as before.
    pub fn answer_garbage(&self, on: bool) {
        self.state().garbage = on;
    }

    /// The most requests served at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads one request head; `None` when the client closed the connection.
async fn read_head(conn: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        match conn.read_line(&mut head).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    Some(head)
}

/// Whether the client sent `Connection: close` (then the fake closes after answering).
fn head_asks_to_close(head: &str) -> bool {
    head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("connection")
                && value.trim().eq_ignore_ascii_case("close")
        })
    })
}

async fn serve(conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut conn = BufReader::new(conn);
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    while let Some(head) = read_head(&mut conn).await {
        let request = Request::parse(head);
        let request_head = request.head.clone();
        let reply = {
            let mut s = lock();
            let reply = s.reply(&request);
            s.requests.push(request);
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            reply
        };
        match reply {
            Reply::Hang => return std::future::pending().await,
            Reply::Close => {
                lock().in_flight -= 1;
                return;
            }
            Reply::Http {
                status,
                body,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                let text = format!(
                    "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                lock().in_flight -= 1;
                let close = head_asks_to_close(&request_head);
                if conn.get_mut().write_all(text.as_bytes()).await.is_err() || close {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Sends one GET on a new connection and returns the raw answer ("" if none).
    async fn get(addr: SocketAddr, target: &str) -> String {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn plays_the_script_in_order_then_repeats_the_last_reply() {
        let fake =
            FakePrometheus::scripted(vec![Reply::http(503, "busy"), Reply::http(200, "{}")]).await;
        let statuses: Vec<String> = [
            get(fake.addr(), "/a").await,
            get(fake.addr(), "/b").await,
            get(fake.addr(), "/c").await,
        ]
        .iter()
        .map(|a| a.lines().next().unwrap_or("").to_string())
        .collect();
        assert_eq!(
            statuses,
            [
                "HTTP/1.1 503 Fake",
                "HTTP/1.1 200 Fake",
                "HTTP/1.1 200 Fake"
            ]
        );
        assert_eq!(fake.requests().len(), 3);
    }

    #[tokio::test]
    async fn decodes_and_records_the_query_and_answers_other_paths_with_404() {
        let fake =
            FakePrometheus::queries_answered_by(|q| (200, serde_json::json!({"q": q}))).await;
        let answer = get(
            fake.addr(),
            "/api/v1/query?query=sum%28up%29+by+%28job%29&time=1",
        )
        .await;
        assert!(answer.ends_with(r#"{"q":"sum(up) by (job)"}"#), "{answer}");
        let other = get(fake.addr(), "/api/v1/labels").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        assert_eq!(fake.queries(), ["sum(up) by (job)"]);
        assert_eq!(fake.requests()[1].path, "/api/v1/labels");
    }

    #[tokio::test]
    async fn per_version_answers_telemetry_queries_until_an_outage() {
        let fake = FakePrometheus::per_version("bookinfo-iter8").await;
        fake.set("reviews-v3", crate::Behaviour::ok(37.0, 51.0));
        let query = "/api/v1/query?query=sum%28increase%28istio_request_duration_milliseconds_sum%5B30s%5D%29%29";
        let answer = get(fake.addr(), query).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains(r#""destination_workload":"reviews-v3","destination_workload_namespace":"bookinfo-iter8""#)
                && answer.contains(r#""value":[1700000000.0,"37"]"#),
            "{answer}"
        );
        fake.fail_with(Some(503));
        let answer = get(fake.addr(), query).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("injected outage"), "{answer}");
        fake.fail_with(None);
        assert!(get(fake.addr(), query).await.starts_with("HTTP/1.1 200"));
        assert_eq!(fake.queries().len(), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "per_version")]
    async fn set_on_a_scripted_fake_is_a_mistake_named_as_such() {
        let fake = FakePrometheus::scripted(vec![]).await;
        fake.set("v1", crate::Behaviour::ok(1.0, 2.0));
    }

    #[tokio::test]
    async fn close_ends_the_connection_without_an_answer() {
        let fake = FakePrometheus::scripted(vec![Reply::Close]).await;
        assert_eq!(get(fake.addr(), "/").await, "");
    }

    #[tokio::test]
    async fn dropping_the_fake_stops_it() {
        let fake = FakePrometheus::scripted(vec![Reply::Hang]).await;
        let addr = fake.addr();
        let mut hung = TcpStream::connect(addr).await.unwrap();
        hung.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        while fake.requests().is_empty() {
            tokio::task::yield_now().await;
        }
        drop(fake);
        // The held connection is closed and nothing listens any more.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), hung.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
