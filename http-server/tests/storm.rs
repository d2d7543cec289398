//! 1,000 concurrent requests, each with a body near the cap, against a server whose handler
//! holds the body for a while: the server stays up and its memory bounded. Alone in its test
//! binary, so that the process' resident memory is the server's and this test's clients'.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use iter8_http_server::{Limits, serve};

/// The process' resident memory (VmRSS in /proc/self/status), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_requests_leave_the_server_up_and_its_memory_bounded() {
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/hold",
        post(|body: Bytes| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            body.len().to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        app,
        Limits::default(),
        std::future::pending(),
    ));
    iter8_test_support::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // One shared buffer: the clients' bodies cost (almost) nothing.
    let body = Bytes::from(vec![b'x'; Limits::default().max_body_bytes - 1024]);
    let url = format!("http://{addr}/hold");
    assert_eq!(
        http.get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let before = rss_kib();
    let requests = (0..1000).map(|_| http.post(&url).body(body.clone()).send());
    let answers = futures::future::join_all(requests).await;
    let after = rss_kib();

    let ok = answers
        .iter()
        .filter(|a| a.as_ref().is_ok_and(|r| r.status() == 200))
        .count();
    let shed = answers
        .iter()
        .filter(|a| a.as_ref().is_ok_and(|r| r.status() == 503))
        .count();
    assert!(ok >= 1, "{ok} answered, {shed} shed");
    // Without limits the server holds all 1,000 bodies at once: ~300 MiB more here; with
    // them ~50 MiB.
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 150,
        "resident memory grew by {grown_mib} MiB ({ok} answered, {shed} shed)"
    );
    let alive = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(alive.status(), 200, "the server is still up");
}
