//! Failure modes, retries, auth, TLS and concurrency, against the scriptable fake Prometheus
//! of iter8-test-support (the answers a real Prometheus will not give on demand).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use iter8_core::MetricsConfig;
use iter8_core::measurement::{Measurement, MetricErrorKind, MetricsQuery, VersionTags, Window};
use iter8_prometheus::{
    Auth, PrometheusClient, PrometheusSettings, PrometheusSource, RetryPolicy, Secret, TlsSettings,
};
use iter8_test_support::{FakePrometheus, Reply};

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_704_067_200, 0).single().unwrap()
}

fn fast(url: String) -> PrometheusSettings {
    PrometheusSettings::new(url)
        .with_timeout(Duration::from_millis(500))
        .with_retry(RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        })
}

fn client(settings: &PrometheusSettings) -> PrometheusClient {
    PrometheusClient::new(settings).unwrap()
}

fn vector(series: &[(&str, &str)]) -> String {
    let samples: Vec<_> = series
        .iter()
        .map(|(w, v)| {
            let metric = serde_json::json!({"destination_workload": w, "destination_workload_namespace": "ns"});
            (metric, *v)
        })
        .collect();
    iter8_test_support::fixtures::vector(&samples).to_string()
}

fn tags(w: &str) -> VersionTags {
    VersionTags::from([
        ("destination_workload".to_string(), w.to_string()),
        (
            "destination_workload_namespace".to_string(),
            "ns".to_string(),
        ),
    ])
}

fn tutorial_query() -> MetricsQuery {
    let config = MetricsConfig::stock_telemetry_v2();
    MetricsQuery {
        window: Window {
            start: t0() - chrono::Duration::seconds(1800),
            end: t0(),
        },
        baseline: tags("b").into(),
        candidate: tags("c").into(),
        metrics: vec![
            config.metric("iter8_latency").unwrap(),
            config.metric("iter8_error_rate").unwrap(),
        ],
    }
}

#[tokio::test]
async fn sends_query_and_time_and_reads_the_vector() {
    let fake = FakePrometheus::scripted(vec![Reply::http(
        200,
        vector(&[("b", "1.5"), ("c", "NaN")]),
    )])
    .await;
    let c = client(&fast(fake.url()));
    let series = c.query("up", t0()).await.unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].value, 1.5);
    assert!(series[1].value.is_nan());
    let head = &fake.heads()[0];
    assert!(
        head.starts_with("GET /api/v1/query?query=up&time=1704067200.000 HTTP/1.1"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("authorization"),
        "{head}"
    );
}

#[tokio::test]
async fn not_json_is_a_bad_response() {
    let fake = FakePrometheus::scripted(vec![Reply::http(200, "<html>login</html>")]).await;
    let err = client(&fast(fake.url()))
        .query("up", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::BadResponse);
    assert!(err.message.contains("not Prometheus' API JSON"), "{err}");
    assert_eq!(fake.heads().len(), 1, "not retried");
}

#[tokio::test]
async fn a_result_that_is_not_a_vector_is_a_bad_response() {
    for (kind, result) in [
        ("scalar", serde_json::json!([1704067200, "1"])),
        ("matrix", serde_json::json!([])),
    ] {
        let body = serde_json::json!({"status": "success", "data": {"resultType": kind, "result": result}});
        let fake = FakePrometheus::scripted(vec![Reply::http(200, body.to_string())]).await;
        let err = client(&fast(fake.url()))
            .query("x", t0())
            .await
            .unwrap_err();
        assert_eq!(err.kind, MetricErrorKind::BadResponse);
        assert!(err.message.contains(&format!("returned a {kind}")), "{err}");
    }
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"lots"]}]}}"#;
    let fake = FakePrometheus::scripted(vec![Reply::http(200, body)]).await;
    let err = client(&fast(fake.url()))
        .query("x", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::BadResponse);
    assert!(err.message.contains("`lots`"), "{err}");
}

#[tokio::test]
async fn prometheus_errors_carry_prometheus_text_and_are_not_retried() {
    let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
    let fake = FakePrometheus::scripted(vec![Reply::http(400, body)]).await;
    let err = client(&fast(fake.url()))
        .query("sum(", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Backend);
    assert_eq!(
        err.message,
        "Prometheus rejected the query (bad_data): invalid parameter \"query\": 1:5: parse error: unexpected end of input"
    );
    assert_eq!(fake.heads().len(), 1);

    let body = r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
    let fake = FakePrometheus::scripted(vec![Reply::http(503, body)]).await;
    let err = client(&fast(fake.url()))
        .query("x", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Timeout);
    assert!(err.message.contains("query timed out"), "{err}");
}

#[tokio::test]
async fn http_errors_are_typed_and_only_gateway_errors_are_retried() {
    let fake = FakePrometheus::scripted(vec![Reply::http(500, "boom")]).await;
    let err = client(&fast(fake.url()))
        .query("x", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::HttpStatus);
    assert!(err.message.contains("HTTP 500"), "{err}");
    assert!(
        !err.message.contains("boom"),
        "a raw body is not quoted: {err}"
    );
    assert_eq!(fake.heads().len(), 1);

    let fake = FakePrometheus::scripted(vec![Reply::http(404, "not here")]).await;
    let err = client(&fast(fake.url()))
        .query("x", t0())
        .await
        .unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::HttpStatus);
    assert_eq!(fake.heads().len(), 1, "a 4xx is not retried");

    let fake = FakePrometheus::scripted(vec![
        Reply::http(503, "warming up"),
        Reply::http(200, vector(&[("b", "7")])),
    ])
    .await;
    let c = client(&fast(fake.url()));
    assert_eq!(c.query("x", t0()).await.unwrap()[0].value, 7.0);
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn a_reset_connection_is_retried() {
    let fake =
        FakePrometheus::scripted(vec![Reply::Close, Reply::http(200, vector(&[("b", "1")]))]).await;
    let c = client(&fast(fake.url()));
    assert_eq!(c.query("x", t0()).await.unwrap().len(), 1);
    assert_eq!(c.requests_sent(), 2);
}

#[tokio::test]
async fn no_answer_is_a_timeout_after_bounded_retries() {
    let fake = FakePrometheus::scripted(vec![Reply::Hang]).await;
    let settings = fast(fake.url()).with_timeout(Duration::from_millis(200));
    let c = client(&settings);
    let started = Instant::now();
    let err = c.query("x", t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Timeout, "{err}");
    assert!(err.message.contains("after 3 attempts"), "{err}");
    assert_eq!(c.requests_sent(), 3);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&fast(format!("http://127.0.0.1:{port}")));
    let err = c.query("x", t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Unreachable, "{err}");
    assert_eq!(c.requests_sent(), 3, "1 attempt + 2 retries");
    // The source reports a backend that is down for every query as a failure of the decision.
    let src = PrometheusSource::new(client(&fast(format!("http://127.0.0.1:{port}"))));
    let err = src.measure_at(&tutorial_query(), t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Unreachable);
}

#[tokio::test]
async fn bearer_and_basic_auth_headers() {
    let fake = FakePrometheus::scripted(vec![Reply::http(200, vector(&[]))]).await;
    let c = client(&fast(fake.url()).with_auth(Auth::Bearer(Secret::new("tok-123"))));
    c.query("x", t0()).await.unwrap();
    let c = client(&fast(fake.url()).with_auth(Auth::Basic {
        username: "admin".into(),
        password: Secret::new("s3cret"),
    }));
    c.query("x", t0()).await.unwrap();
    let heads: Vec<String> = fake
        .heads()
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    assert!(
        heads[0].contains("authorization: bearer tok-123"),
        "{}",
        heads[0]
    );
    // base64("admin:s3cret")
    assert!(
        heads[1].contains("authorization: basic ywrtaw46cznjcmv0"),
        "{}",
        heads[1]
    );
}

#[tokio::test]
async fn a_decision_is_three_concurrent_queries_split_between_versions() {
    let answer = Reply::Http {
        status: 200,
        body: vector(&[("b", "10"), ("c", "+Inf"), ("other", "1")]),
        delay: Duration::from_millis(300),
    };
    let fake = FakePrometheus::scripted(vec![answer]).await;
    let src = PrometheusSource::new(client(
        &fast(fake.url()).with_timeout(Duration::from_secs(5)),
    ));
    let m = src.measure_at(&tutorial_query(), t0()).await.unwrap();
    assert_eq!(m.queries.len(), 3);
    assert_eq!(fake.heads().len(), 3);
    assert_eq!(fake.max_in_flight(), 3, "the three queries run at once");
    for r in &m.readings {
        assert_eq!(r.baseline.value, Measurement::Value(10.0));
        assert_eq!(r.baseline.sample_size, Measurement::Value(10.0));
        assert_eq!(r.candidate.value, Measurement::PosInf);
    }
}

#[tokio::test]
async fn one_failing_query_fails_only_its_numbers() {
    let fake = FakePrometheus::scripted(vec![
        Reply::http(200, vector(&[("b", "1"), ("c", "-Inf")])),
        Reply::http(404, "gone"),
        Reply::http(200, vector(&[("b", "1"), ("c", "-Inf")])),
    ])
    .await;
    let src = PrometheusSource::new(client(&fast(fake.url())));
    let m = src.measure_at(&tutorial_query(), t0()).await.unwrap();
    let errors = m
        .readings
        .iter()
        .flat_map(|r| {
            [
                &r.baseline.value,
                &r.baseline.sample_size,
                &r.candidate.value,
                &r.candidate.sample_size,
            ]
        })
        .filter(|m| {
            m.error()
                .is_some_and(|e| e.kind == MetricErrorKind::HttpStatus)
        })
        .count();
    // Whichever query got the 404 (they race), its two numbers (baseline and candidate) are
    // errors, or four when it is the shared sample-size query.
    assert!(errors == 2 || errors == 4, "{:#?}", m.readings);
    assert!(
        m.readings
            .iter()
            .any(|r| r.candidate.value == Measurement::NegInf)
    );
}

fn openssl(args: &[&str], dir: &std::path::Path) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Serves one HTTPS answer per connection with a certificate signed by a fresh test CA.
async fn tls_server(dir: &std::path::Path) -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=iter8 test CA",
    ]);
    openssl(&ca, dir);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&csr, dir);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = vector(&[("b", "42")]);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let text = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(text.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn tls_with_a_custom_ca_or_skipped_verification() {
    let dir = tempfile::tempdir().unwrap();
    let addr = tls_server(dir.path()).await;
    let url = format!("https://{addr}");
    let no_retry = |s: PrometheusSettings| s.with_retry(RetryPolicy::NONE);

    let trusted = no_retry(fast(url.clone()).with_ca_file(dir.path().join("ca.pem")));
    assert_eq!(
        client(&trusted).query("x", t0()).await.unwrap()[0].value,
        42.0
    );

    let untrusted = no_retry(fast(url.clone()));
    let err = client(&untrusted).query("x", t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Unreachable, "{err}");
    assert!(
        err.message.to_ascii_lowercase().contains("certificate"),
        "{err}"
    );

    let skip = no_retry(fast(url).with_tls(TlsSettings {
        ca_file: None,
        insecure_skip_verify: true,
    }));
    assert_eq!(client(&skip).query("x", t0()).await.unwrap()[0].value, 42.0);

    let not_pem = dir.path().join("ext.cnf");
    let err = PrometheusClient::new(&fast("https://x".into()).with_ca_file(&not_pem)).unwrap_err();
    assert!(err.to_string().starts_with("CA file"), "{err}");
}
