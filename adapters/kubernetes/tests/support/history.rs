//! What the operator tests read back: the iterations a recorded history went through,
//! timestamps, and a GET on the operator's endpoints.

#![allow(dead_code)]

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The iterations a history went through, in order: each distinct
/// (`currentIteration`, `lastIncrementTime`) after the first increment. An iteration run twice
/// shows as a repeated number, a lost one as a gap.
pub fn iterations(history: &[Value]) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for exp in history {
        let s = &exp["status"];
        let Some(n) = s["currentIteration"].as_u64().filter(|n| *n > 0) else {
            continue;
        };
        let at = s["lastIncrementTime"].as_str().unwrap_or("").to_string();
        if out.last() != Some(&(n, at.clone())) {
            out.push((n, at));
        }
    }
    out
}

/// Fails unless `runs` (see [`iterations`]) are iterations 1..=`n`, each once, in order and
/// `interval` seconds or more apart.
pub fn assert_iterations_once(runs: &[(u64, String)], n: u64, interval: f64) {
    assert_eq!(
        runs.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "{runs:#?}"
    );
    for pair in runs.windows(2) {
        // Never early either: each iteration one interval or more after the previous one.
        assert!(
            seconds_between(&pair[0].1, &pair[1].1) >= interval,
            "increments in order, an interval apart: {runs:#?}"
        );
    }
}

/// Seconds between two RFC 3339 timestamps.
pub fn seconds_between(from: &str, to: &str) -> f64 {
    let from = chrono::DateTime::parse_from_rfc3339(from).expect("a timestamp");
    let to = chrono::DateTime::parse_from_rfc3339(to).expect("a timestamp");
    (to - from).as_seconds_f64()
}

/// GET on an operator's endpoints at 127.0.0.1:`port`: (status code, body); code 0 if nothing
/// answers, or the answer does not end within 10 s.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    let response = match tokio::time::timeout(std::time::Duration::from_secs(10), exchange).await {
        Ok(Ok(response)) => response,
        _ => return (0, String::new()),
    };
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}
