//! A GET on the operator's endpoints, as the operator tests read them back.

#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
