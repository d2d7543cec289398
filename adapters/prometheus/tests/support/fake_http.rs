//! A tiny HTTP/1.1 server on 127.0.0.1:0 that answers from a script, records the requests it
//! got, and counts how many it served at once. For the failure modes a real Prometheus will
//! not produce on demand (bad JSON, HTTP 500, no answer, a reset connection).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
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
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    last: Option<Reply>,
    requests: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
}

/// A running fake server; aborted when dropped.
pub struct FakeHttp {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    /// Starts a server that plays `script` in order and then repeats the last reply.
    pub async fn start(script: Vec<Reply>) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, st.clone()));
            }
        });
        FakeHttp { addr, state, task }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// The most requests served at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().expect("lock").max_in_flight
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut conn: TcpStream, state: Arc<Mutex<State>>) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let reply = {
            let mut s = state.lock().expect("lock");
            s.requests.push(String::from_utf8_lossy(&head).into_owned());
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            let next = s.script.pop_front().or_else(|| s.last.clone());
            s.last = next.clone();
            next.unwrap_or(Reply::http(500, "script is empty"))
        };
        let done = |state: &Arc<Mutex<State>>| state.lock().expect("lock").in_flight -= 1;
        match reply {
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Reply::Close => {
                done(&state);
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
                done(&state);
                if conn.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}
