//! Helpers for the adapters that call HTTP services (Prometheus, a remote iter8-analytics):
//! the services are trusted less than the operator, so an answer is read only up to a cap and
//! an error message that ends up in an experiment's status is bounded.
//!
//! No iter8 types: each adapter turns [`BodyError`] into its own port's error.

/// What ends a message cut by [`bounded`].
pub const TRUNCATED: &str = "… (truncated)";

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body (or its announced `Content-Length`) is larger than the cap.
    #[error("the answer exceeds {cap} bytes")]
    TooLarge {
        /// The cap in bytes.
        cap: usize,
    },
    /// The connection failed or timed out while the body was read.
    #[error("reading the answer: {0}")]
    Http(#[from] reqwest::Error),
}

/// Reads `response`'s body chunk by chunk, giving up once it exceeds `cap` bytes (at once when
/// the announced `Content-Length` does), so a hostile or broken service cannot exhaust memory.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge { cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `text`, cut to `max` characters with [`TRUNCATED`] appended when it is longer.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}{TRUNCATED}", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves one HTTP/1.1 answer on 127.0.0.1: `body`, with a `Content-Length` header when
    /// `announce` is set and chunked otherwise; returns the URL to GET.
    async fn serve_once(body: Vec<u8>, announce: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let answer = if announce {
                let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                    .into_bytes();
                a.extend_from_slice(&body);
                a
            } else {
                let mut a = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for chunk in body.chunks(1000) {
                    a.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    a.extend_from_slice(chunk);
                    a.extend_from_slice(b"\r\n");
                }
                a.extend_from_slice(b"0\r\n\r\n");
                a
            };
            // The client may stop reading once over the cap: a failed write is expected then.
            let _ = socket.write_all(&answer).await;
        });
        url
    }

    async fn get(url: &str) -> reqwest::Response {
        // Err: a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        for announce in [true, false] {
            let body = vec![b'x'; 4000];
            let url = serve_once(body.clone(), announce).await;
            let read = read_capped(get(&url).await, 4000).await.unwrap();
            assert_eq!(read, body, "content-length announced: {announce}");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_naming_the_cap() {
        for announce in [true, false] {
            let url = serve_once(vec![b'x'; 4001], announce).await;
            let err = read_capped(get(&url).await, 4000).await.unwrap_err();
            assert!(
                matches!(err, BodyError::TooLarge { cap: 4000 }),
                "content-length announced: {announce}: {err:?}"
            );
            assert_eq!(err.to_string(), "the answer exceeds 4000 bytes");
        }
    }

    #[test]
    fn bounded_cuts_at_a_character_and_marks_the_cut() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcdé", 4), format!("abcd{TRUNCATED}"));
        assert_eq!(bounded("abcdé", 5), "abcdé");
    }
}
