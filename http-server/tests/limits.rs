//! Each limit of `iter8_http_server::serve`, against a real server on 127.0.0.1 and real
//! clients (raw TCP for the idle and slow ones, reqwest for the rest).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use iter8_http_server::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /` answers at once, `GET /slow` after 500 ms, `POST /echo` with the body's length.
fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
}

/// Serves [`app`] within `limits` on 127.0.0.1:0; the server stops with the test's runtime.
async fn start(limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app(), limits, std::future::pending()));
    addr
}

fn client() -> reqwest::Client {
    iter8_test_support::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Whether the server closes `stream` (end of file or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_idle_connections_do_not_stop_a_request() {
    let addr = start(Limits::default()).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        client().get(format!("http://{addr}/")).send(),
    )
    .await
    .expect("answered within a second")
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(idle.len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_sends_no_head_in_time_is_disconnected() {
    let addr = start(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    // Half a head, then nothing (slowloris).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    // A kept-alive connection that sends no next request.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    kept.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_gets_413() {
    let addr = start(Limits::default()).await;
    let url = format!("http://{addr}/echo");
    let cap = Limits::default().max_body_bytes;
    let fits = client()
        .post(&url)
        .body(vec![b'x'; cap])
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
    assert_eq!(fits.text().await.unwrap(), cap.to_string());
    // Over the cap, with a Content-Length ...
    let over = client()
        .post(&url)
        .body(vec![b'x'; cap + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 413);
    // ... and chunked, without one.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head =
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", cap / 4, "x".repeat(cap / 4));
    for _ in 0..8 {
        // The server may answer and close before the last chunks: that is the point.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_request_timeout_gets_503() {
    let addr = start(Limits {
        request_timeout: Duration::from_millis(100),
        ..Limits::default()
    })
    .await;
    let slow = client()
        .get(format!("http://{addr}/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 503);
    let quick = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(quick.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_concurrency_limit_get_503_at_once() {
    let addr = start(Limits {
        max_concurrent_requests: 2,
        ..Limits::default()
    })
    .await;
    let http = client();
    let url = format!("http://{addr}/slow");
    let answers = futures::future::join_all((0..5).map(|_| http.get(&url).send())).await;
    let mut statuses: Vec<u16> = answers
        .into_iter()
        .map(|a| a.unwrap().status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 503, 503, 503]);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let addr = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let waiting = tokio::spawn(client().get(format!("http://{addr}/")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a third connection was served");
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(answer.status(), 200);
}
