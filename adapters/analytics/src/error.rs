//! The API's errors and their bodies: HTTP 400 `{"message": ...}` as iter8-analytics answers
//! every failure, and flask_restplus' `{"errors": {...}, "message": "Input payload validation
//! failed"}` for a request that does not match the schema.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use iter8_core::MetricErrorKind;
use iter8_core::analytics::AnalyticsError;
use serde_json::json;

/// iter8-analytics' message when Prometheus answers with an error.
pub const QUERY_FAILED: &str = "Query did not succeed. Check your query template.";
/// iter8-analytics' message when a window starts after it ends.
pub const START_AFTER_END: &str = "Start time cannot exceed end time";
/// flask_restplus' message for a payload that does not match the schema.
pub const VALIDATION_FAILED: &str = "Input payload validation failed";
/// flask's message for an unknown URL.
pub const NOT_FOUND: &str = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
/// flask's message for a known URL with the wrong method.
pub const METHOD_NOT_ALLOWED: &str = "The method is not allowed for the requested URL.";

/// Why a request was refused; every variant is answered with HTTP 400 except `NotFound` (404)
/// and `MethodNotAllowed` (405).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("Failed to decode JSON object: {0}")]
    Json(String),
    /// The payload does not match the schema: field path -> message.
    #[error("{VALIDATION_FAILED}")]
    Validation(serde_json::Map<String, serde_json::Value>),
    /// The request is well-formed but cannot be answered (bad time, bad state, ...).
    #[error("{0}")]
    BadRequest(String),
    /// The analysis failed (metrics backend, configuration).
    #[error("{0}")]
    Analytics(String),
    /// No such endpoint.
    #[error("{NOT_FOUND}")]
    NotFound,
    /// The endpoint does not take this method.
    #[error("{METHOD_NOT_ALLOWED}")]
    MethodNotAllowed,
}

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> Self {
        match e {
            AnalyticsError::Metrics(m) if m.kind == MetricErrorKind::Backend => {
                ApiError::Analytics(QUERY_FAILED.to_string())
            }
            AnalyticsError::Metrics(m) => ApiError::Analytics(m.message),
            AnalyticsError::Invalid(m) | AnalyticsError::Service(m) => ApiError::Analytics(m),
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        match self {
            ApiError::Validation(errors) => json!({"errors": errors, "message": VALIDATION_FAILED}),
            other => json!({"message": other.to_string()}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}
