//! Uploading the dashboard through Grafana's HTTP API (`POST /api/dashboards/db`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

/// The API path dashboards are created or updated at.
pub const DASHBOARDS_PATH: &str = "/api/dashboards/db";
/// The environment variable a token is read from when no token file is given.
pub const TOKEN_ENV: &str = "GRAFANA_TOKEN";
/// How long a push may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Grafana service-account or API token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text (surrounding whitespace removed); it must be a non-empty header value.
    pub fn new(text: &str) -> Result<Token, PushError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(PushError::InvalidToken("the token is empty".into()));
        }
        if HeaderValue::from_str(&format!("Bearer {t}")).is_err() {
            return Err(PushError::InvalidToken(
                "the token contains characters not allowed in an HTTP header".into(),
            ));
        }
        Ok(Token(t.to_string()))
    }

    /// Reads a token from a file (e.g. a mounted Kubernetes Secret).
    pub fn from_file(path: &Path) -> Result<Token, PushError> {
        let text = std::fs::read_to_string(path).map_err(|e| PushError::TokenFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Token::new(&text).map_err(|e| match e {
            PushError::InvalidToken(reason) => PushError::TokenFile {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// Reads the token from `GRAFANA_TOKEN`; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Token>, PushError> {
        match std::env::var(TOKEN_ENV) {
            Ok(v) if !v.trim().is_empty() => Token::new(&v).map(Some),
            _ => Ok(None),
        }
    }

    fn header(&self) -> Result<HeaderValue, PushError> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            PushError::InvalidToken(
                "the token contains characters not allowed in an HTTP header".into(),
            )
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how to reach Grafana.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// Grafana's base URL, e.g. `http://grafana.istio-system:3000` (a path prefix is kept).
    pub url: String,
    /// Sent as `Authorization: Bearer ...`; `None` for a Grafana without authentication.
    pub token: Option<Token>,
    /// The folder to put the dashboard in (`folderUid`); `None`: Grafana's default folder.
    pub folder_uid: Option<String>,
    /// How long the whole request may take.
    pub timeout: Duration,
}

impl ClientSettings {
    /// Settings for a Grafana at `url`, without token or folder, with the default timeout.
    pub fn new(url: impl Into<String>) -> Self {
        ClientSettings {
            url: url.into(),
            token: None,
            folder_uid: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Grafana's answer to a successful push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResponse {
    /// The HTTP status code (200).
    pub http_status: u16,
    /// Grafana's `status` (`success`).
    pub status: String,
    /// The dashboard's path in Grafana (e.g. `/d/eXPEaNnZz/iter8-application-metrics`).
    pub url: String,
    /// The dashboard's version after the push.
    pub version: i64,
    /// The dashboard's uid.
    pub uid: Option<String>,
    /// Grafana's numeric id of the dashboard.
    pub id: Option<i64>,
}

/// Why a push failed. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The Grafana URL is not an http(s) URL.
    #[error("Grafana URL `{url}` is invalid: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token cannot be used.
    #[error("Grafana token: {0}")]
    InvalidToken(String),
    /// The token file cannot be read or holds no usable token.
    #[error("Grafana token file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Grafana could not be reached (refused connection, unknown host, TLS failure, ...).
    #[error("cannot reach Grafana at {url}: {reason}")]
    Connect {
        /// The URL posted to.
        url: String,
        /// The underlying cause.
        reason: String,
    },
    /// Grafana did not answer in time.
    #[error("Grafana at {url} did not answer within {seconds} s")]
    Timeout {
        /// The URL posted to.
        url: String,
        /// The timeout in seconds.
        seconds: u64,
    },
    /// 401: no token, or a wrong or expired one.
    #[error(
        "Grafana at {url} answered 401 Unauthorized ({message}): give a valid token with --token-file or GRAFANA_TOKEN"
    )]
    Unauthorized {
        /// The URL posted to.
        url: String,
        /// Grafana's message.
        message: String,
    },
    /// 403: the token may not write dashboards (or into that folder).
    #[error(
        "Grafana at {url} answered 403 Forbidden ({message}): the token needs the Editor role or dashboard write permission"
    )]
    Forbidden {
        /// The URL posted to.
        url: String,
        /// Grafana's message.
        message: String,
    },
    /// 412: a dashboard with the same name or uid exists, or another version was saved since.
    #[error("Grafana refused the dashboard with 412 Precondition Failed ({status}): {message}")]
    PreconditionFailed {
        /// Grafana's reason: `version-mismatch`, `name-exists` or `plugin-dashboard`.
        status: String,
        /// Grafana's message.
        message: String,
    },
    /// Any other unsuccessful HTTP status.
    #[error("Grafana at {url} answered {code}: {message}")]
    Rejected {
        /// The URL posted to.
        url: String,
        /// The HTTP status code.
        code: u16,
        /// Grafana's message, or the start of its body.
        message: String,
    },
    /// A 2xx answer that is not Grafana's JSON.
    #[error("Grafana at {url} answered {code} with an unexpected body: {reason}")]
    BadResponse {
        /// The URL posted to.
        url: String,
        /// The HTTP status code.
        code: u16,
        /// What is wrong with it.
        reason: String,
    },
    /// The runtime of [`push_dashboard_blocking`] could not be started.
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

#[derive(Deserialize)]
struct SuccessBody {
    #[serde(default)]
    status: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    id: Option<i64>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// A Grafana HTTP API client; build it once, push many times.
#[derive(Debug, Clone)]
pub struct GrafanaClient {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    settings: ClientSettings,
}

impl GrafanaClient {
    /// Checks the settings and builds the client (installing rustls' `ring` crypto provider as
    /// the process default first, if none is installed yet).
    pub fn new(settings: ClientSettings) -> Result<Self, PushError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = api_url(&settings.url)?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PushError::Client(error_chain(&e)))?;
        Ok(GrafanaClient {
            http,
            endpoint,
            settings,
        })
    }

    /// The URL dashboards are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Creates or replaces the dashboard (`overwrite: true`).
    pub async fn push(&self, dashboard: &Value) -> Result<PushResponse, PushError> {
        let url = self.endpoint.to_string();
        let mut body = json!({"dashboard": without_id(dashboard), "overwrite": true});
        if let (Some(folder), Some(obj)) = (&self.settings.folder_uid, body.as_object_mut()) {
            obj.insert("folderUid".into(), Value::String(folder.clone()));
        }
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body.to_string());
        if let Some(token) = &self.settings.token {
            request = request.header(AUTHORIZATION, token.header()?);
        }
        let response = request.send().await.map_err(|e| self.send_error(&e))?;
        let code = response.status().as_u16();
        let text = response.text().await.map_err(|e| self.send_error(&e))?;
        if (200..300).contains(&code) {
            let ok: SuccessBody =
                serde_json::from_str(&text).map_err(|e| PushError::BadResponse {
                    url: url.clone(),
                    code,
                    reason: e.to_string(),
                })?;
            return Ok(PushResponse {
                http_status: code,
                status: ok.status,
                url: ok.url,
                version: ok.version,
                uid: ok.uid,
                id: ok.id,
            });
        }
        let err: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
        let message = err
            .message
            .clone()
            .unwrap_or_else(|| snippet(&text).to_string());
        Err(match code {
            401 => PushError::Unauthorized { url, message },
            403 => PushError::Forbidden { url, message },
            412 => PushError::PreconditionFailed {
                status: err.status.unwrap_or_else(|| "unknown".into()),
                message,
            },
            _ => PushError::Rejected { url, code, message },
        })
    }

    fn send_error(&self, e: &reqwest::Error) -> PushError {
        let url = self.endpoint.to_string();
        if e.is_timeout() {
            PushError::Timeout {
                url,
                seconds: self.settings.timeout.as_secs(),
            }
        } else {
            PushError::Connect {
                url,
                reason: error_chain(e),
            }
        }
    }
}

/// Pushes the dashboard with fresh client settings (see [`GrafanaClient::push`]).
pub async fn push_dashboard(
    client_settings: &ClientSettings,
    dashboard: &Value,
) -> Result<PushResponse, PushError> {
    GrafanaClient::new(client_settings.clone())?
        .push(dashboard)
        .await
}

/// [`push_dashboard`] on a current-thread runtime of its own, for callers without one. Must
/// not be called from inside an async runtime.
pub fn push_dashboard_blocking(
    client_settings: &ClientSettings,
    dashboard: &Value,
) -> Result<PushResponse, PushError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PushError::Runtime(e.to_string()))?;
    runtime.block_on(push_dashboard(client_settings, dashboard))
}

fn api_url(base: &str) -> Result<reqwest::Url, PushError> {
    let invalid = |reason: String| PushError::InvalidUrl {
        url: base.to_string(),
        reason,
    };
    let trimmed = base.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{trimmed}{DASHBOARDS_PATH}"))
        .map_err(|e| invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not accepted; use a token".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not accepted".into()));
    }
    Ok(url)
}

/// The dashboard without its instance-specific numeric `id` (Grafana matches on `uid`).
fn without_id(dashboard: &Value) -> Value {
    let mut d = dashboard.clone();
    if let Some(obj) = d.as_object_mut() {
        obj.remove("id");
    }
    d
}

fn snippet(text: &str) -> &str {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => &t[..i],
        None => t,
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_url_keeps_a_path_prefix_and_rejects_bad_urls() {
        assert_eq!(
            api_url("http://h:3000/grafana/").unwrap().as_str(),
            "http://h:3000/grafana/api/dashboards/db"
        );
        for bad in [
            "ftp://h",
            "not a url",
            "http://user:pw@h",
            "http://h/?x=1",
            "",
        ] {
            assert!(
                matches!(api_url(bad), Err(PushError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_is_never_shown() {
        let t = Token::new(" glsa_secret\n").unwrap();
        assert_eq!(format!("{t:?} {t}"), "Token(<redacted>) <redacted>");
        let s = ClientSettings {
            token: Some(t),
            ..ClientSettings::new("http://h")
        };
        assert!(!format!("{s:?}").contains("glsa_secret"));
        assert!(matches!(Token::new("  "), Err(PushError::InvalidToken(_))));
        assert!(matches!(
            Token::new("a\u{7}b"),
            Err(PushError::InvalidToken(_))
        ));
    }

    #[test]
    fn id_is_dropped_before_pushing() {
        assert_eq!(
            without_id(&json!({"id": 3, "uid": "u"})),
            json!({"uid": "u"})
        );
    }
}
