//! The HTTP server: one version on one 127.0.0.1 port, stopped when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::behavior::Behavior;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for (0: any).
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

struct Shared {
    name: String,
    behavior: Behavior,
    served: AtomicU64,
}

/// A running version of the service; stops (and frees its port) when dropped.
pub struct ReviewsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ReviewsServer {
    /// Starts `name` (e.g. `reviews-v3`) with `behavior` on 127.0.0.1:`port` (0: any free port).
    /// Must be called inside a tokio runtime.
    pub async fn start(name: &str, behavior: Behavior, port: u16) -> Result<Self, ServeError> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| ServeError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { port, source })?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            behavior,
            served: AtomicU64::new(0),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(ReviewsServer {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The version's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Stops accepting requests and closes the port.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

impl Drop for ReviewsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    tokio::time::sleep(shared.behavior.latency).await;
    shared.served.fetch_add(1, Ordering::Relaxed);
    let status = if shared.behavior.fails {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let body = if shared.behavior.fails {
        format!("{{\"error\": \"{} is broken\"}}\n", shared.name)
    } else {
        format!(
            "{{\"id\": \"0\", \"podname\": \"{}\", \"reviews\": [{{\"reviewer\": \"Reviewer1\", \"text\": \"An extremely entertaining play by Shakespeare.\"}}]}}\n",
            shared.name
        )
    };
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /reviews/0 HTTP/1.0\r\nHost: reviews\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn healthy_and_failing_versions_answer_as_told() {
        let ok = ReviewsServer::start("reviews-v3", Behavior::of("v3").unwrap(), 0)
            .await
            .unwrap();
        assert!(ok.addr().ip().is_loopback());
        let answer = get(ok.addr()).await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(answer.contains("reviews-v3"));
        let bad = ReviewsServer::start("reviews-v5", Behavior::of("v5").unwrap(), 0)
            .await
            .unwrap();
        assert!(get(bad.addr()).await.starts_with("HTTP/1.0 500"));
        assert_eq!(ok.served() + bad.served(), 2);
    }

    #[tokio::test]
    async fn the_slow_version_takes_its_latency() {
        let slow = Behavior::of("v4")
            .unwrap()
            .with_latency(Duration::from_millis(300));
        let server = ReviewsServer::start("reviews-v4", slow, 0).await.unwrap();
        let t = std::time::Instant::now();
        get(server.addr()).await;
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_stopped_server_frees_its_port() {
        let mut server = ReviewsServer::start("reviews-v2", Behavior::of("v2").unwrap(), 0)
            .await
            .unwrap();
        let addr = server.addr();
        server.stop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
