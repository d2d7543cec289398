//! The operator's `/metrics`, `/healthz` and `/readyz` server on 127.0.0.1 under abuse: idle
//! connections, an oversized body, 1,000 requests at once. No Kubernetes needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iter8_kubernetes::OperatorMetrics;
use iter8_kubernetes::server::{self, Health};

async fn start() -> SocketAddr {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (metrics, health) = (
        Arc::new(OperatorMetrics::new()),
        Arc::new(Health::default()),
    );
    tokio::spawn(server::serve(
        listener,
        metrics,
        health,
        std::future::pending(),
    ));
    addr
}

fn client() -> reqwest::Client {
    iter8_test_support::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

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
async fn two_hundred_idle_connections_do_not_stop_a_probe() {
    let addr = start().await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let probe = tokio::time::timeout(
        Duration::from_secs(1),
        client().get(format!("http://{addr}/healthz")).send(),
    )
    .await
    .expect("answered within a second")
    .unwrap();
    assert_eq!(probe.status(), 200);
    assert_eq!(idle.len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_gets_413() {
    let addr = start().await;
    let big = vec![b'x'; iter8_http_server::Limits::default().max_body_bytes + 1];
    let answer = client()
        .post(format!("http://{addr}/metrics"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_scrapes_leave_the_server_up_and_its_memory_bounded() {
    let addr = start().await;
    let http = client();
    let url = format!("http://{addr}/metrics");
    let before = rss_kib();
    let answers = futures::future::join_all((0..1000).map(|_| http.get(&url).send())).await;
    let after = rss_kib();
    for answer in &answers {
        let status = answer.as_ref().map(|a| a.status().as_u16());
        assert!(
            matches!(status, Ok(200 | 503)),
            "a scrape is answered or shed: {status:?}"
        );
    }
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(grown_mib < 150, "resident memory grew by {grown_mib} MiB");
    let alive = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
}
