//! Pushing against a fake Grafana HTTP API on 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use iter8_grafana::{ClientSettings, PushError, Token, push_dashboard};
use serde_json::{Value, json};

/// What the fake Grafana saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    status: StatusCode,
    answer: Value,
}

async fn handle(
    State(fake): State<Fake>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    fake.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    });
    (fake.status, axum::Json(fake.answer.clone()))
}

/// Starts a fake Grafana answering every request with `status` and `answer`; returns its base
/// URL and what it saw.
async fn fake_grafana(status: u16, answer: Value) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        seen: seen.clone(),
        status: StatusCode::from_u16(status).unwrap(),
        answer,
    };
    let app = Router::new().fallback(any(handle)).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn dashboard() -> Value {
    json!({"id": 7, "uid": "eXPEaNnZz", "title": "iter8-application-metrics", "panels": []})
}

fn settings(url: &str) -> ClientSettings {
    ClientSettings {
        token: Some(Token::new("glsa_s3cret").unwrap()),
        ..ClientSettings::new(url)
    }
}

#[tokio::test]
async fn posts_the_dashboard_with_bearer_token_and_reports_the_answer() {
    let (base, seen) = fake_grafana(
        200,
        json!({"id": 1, "uid": "eXPEaNnZz", "url": "/grafana/d/eXPEaNnZz/iter8-application-metrics",
               "status": "success", "version": 3, "slug": "iter8-application-metrics"}),
    )
    .await;
    let mut s = settings(&format!("{base}/grafana/"));
    s.folder_uid = Some("iter8-folder".into());
    let answer = push_dashboard(&s, &dashboard()).await.expect("push");
    assert_eq!(answer.http_status, 200);
    assert_eq!(answer.status, "success");
    assert_eq!(answer.version, 3);
    assert_eq!(answer.url, "/grafana/d/eXPEaNnZz/iter8-application-metrics");
    assert_eq!(answer.uid.as_deref(), Some("eXPEaNnZz"));
    assert_eq!(answer.id, Some(1));

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/grafana/api/dashboards/db");
    assert_eq!(r.authorization.as_deref(), Some("Bearer glsa_s3cret"));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.body,
        json!({
            "dashboard": {"uid": "eXPEaNnZz", "title": "iter8-application-metrics", "panels": []},
            "overwrite": true,
            "folderUid": "iter8-folder",
        })
    );
}

#[tokio::test]
async fn without_token_or_folder_neither_is_sent() {
    let (base, seen) = fake_grafana(
        200,
        json!({"status": "success", "url": "/d/eXPEaNnZz/x", "version": 1}),
    )
    .await;
    let answer = push_dashboard(&ClientSettings::new(&base), &dashboard())
        .await
        .expect("push");
    assert_eq!(answer.version, 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].authorization, None);
    assert!(seen[0].body.get("folderUid").is_none());
    assert_eq!(seen[0].body["overwrite"], true);
}

#[tokio::test]
async fn unauthorized_is_a_clear_error_without_the_token() {
    let (base, _) = fake_grafana(401, json!({"message": "invalid API key"})).await;
    let err = push_dashboard(&settings(&base), &dashboard())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PushError::Unauthorized {
            url: format!("{base}/api/dashboards/db"),
            message: "invalid API key".into()
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("401 Unauthorized (invalid API key)"),
        "{text}"
    );
    assert!(text.contains("--token-file or GRAFANA_TOKEN"), "{text}");
    assert!(!text.contains("s3cret") && !format!("{err:?}").contains("s3cret"));
}

#[tokio::test]
async fn precondition_failed_names_grafanas_reason() {
    for (status, message) in [
        (
            "version-mismatch",
            "The dashboard has been changed by someone else",
        ),
        (
            "name-exists",
            "A dashboard with the same name in the folder already exists",
        ),
    ] {
        let (base, _) = fake_grafana(412, json!({"status": status, "message": message})).await;
        let err = push_dashboard(&settings(&base), &dashboard())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PushError::PreconditionFailed {
                status: status.into(),
                message: message.into()
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "Grafana refused the dashboard with 412 Precondition Failed ({status}): {message}"
            )
        );
    }
}

#[tokio::test]
async fn other_statuses_are_rejections_with_grafanas_message() {
    let (base, _) = fake_grafana(403, json!({"message": "Access denied"})).await;
    let err = push_dashboard(&settings(&base), &dashboard())
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Forbidden { ref message, .. } if message == "Access denied"));
    let (base, _) = fake_grafana(500, json!({"message": "db locked"})).await;
    let err = push_dashboard(&settings(&base), &dashboard())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PushError::Rejected { code: 500, ref message, .. } if message == "db locked")
    );
    let (base, _) = fake_grafana(200, json!("not an object")).await;
    let err = push_dashboard(&settings(&base), &dashboard())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PushError::BadResponse { code: 200, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = push_dashboard(&settings(&format!("http://{addr}")), &dashboard())
        .await
        .unwrap_err();
    match &err {
        PushError::Connect { url, reason } => {
            assert_eq!(url, &format!("http://{addr}/api/dashboards/db"));
            assert!(reason.to_lowercase().contains("refused"), "{reason}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!(
        "cannot reach Grafana at http://{addr}/api/dashboards/db: "
    )));
}

#[test]
fn blocking_push_works_without_a_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (base, seen) = runtime.block_on(fake_grafana(
        200,
        json!({"status": "success", "url": "/d/eXPEaNnZz/x", "version": 9}),
    ));
    let answer =
        iter8_grafana::push_dashboard_blocking(&settings(&base), &dashboard()).expect("push");
    assert_eq!(answer.version, 9);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn token_file_is_read_and_trimmed() {
    let dir = std::env::temp_dir().join(format!("iter8-grafana-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "glsa_from_file\n").unwrap();
    assert_eq!(
        Token::from_file(&file).unwrap(),
        Token::new("glsa_from_file").unwrap()
    );
    std::fs::write(&file, "\n").unwrap();
    let err = Token::from_file(&file).unwrap_err();
    assert!(
        err.to_string().ends_with("token: the token is empty")
            || err.to_string().contains("the token is empty"),
        "{err}"
    );
    let missing = Token::from_file(&dir.join("nope")).unwrap_err();
    assert!(matches!(missing, PushError::TokenFile { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}
