//! `Status` objects as the real API server returns them for failures and deletions.

use serde_json::{Value, json};

use crate::store::Resource;

/// A failed request: the HTTP code and the `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `MethodNotAllowed`, ...
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// `details` (name, group, kind), when the error is about one object.
    pub details: Option<Value>,
}

impl ApiError {
    /// The `Status` body.
    pub fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    /// `<resource> "<name>" not found` (404).
    pub fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", res.qualified()),
            details: Some(details(res, name)),
        }
    }

    /// `<resource> "<name>" already exists` (409).
    pub fn already_exists(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", res.qualified()),
            details: Some(details(res, name)),
        }
    }

    /// A stale `resourceVersion` (409).
    pub fn conflict(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                res.qualified()
            ),
            details: Some(details(res, name)),
        }
    }

    /// A server-side apply conflict with another field manager (409).
    pub fn apply_conflict(res: &Resource, name: &str, fields: &[(String, String)]) -> ApiError {
        let causes: Vec<Value> = fields
            .iter()
            .map(|(field, manager)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            })
            .collect();
        let mut d = details(res, name);
        d["causes"] = Value::Array(causes);
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Apply failed with {} conflict{}: {}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                fields
                    .iter()
                    .map(|(f, m)| format!("conflict with \"{m}\": {f}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            details: Some(d),
        }
    }

    /// A request the object's rules reject (422).
    pub fn invalid(res: &Resource, name: &str, message: String) -> ApiError {
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {message}", res.kind),
            details: Some(details(res, name)),
        }
    }

    /// A malformed request (400).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// A verb this server does not implement (405).
    pub fn method_not_allowed(what: &str) -> ApiError {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method on the requested resource ({what})"
            ),
            details: None,
        }
    }

    /// A patch type this server does not implement (415).
    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})"
            ),
            details: None,
        }
    }

    /// The resource version asked for is no longer available (410).
    pub fn gone(rv: u64) -> ApiError {
        ApiError {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {rv}"),
            details: None,
        }
    }
}

fn details(res: &Resource, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": res.plural });
    if !res.group.is_empty() {
        d["group"] = Value::String(res.group.clone());
    }
    d
}

/// The `Status` a delete returns when the object is gone at once.
pub fn deleted(res: &Resource, name: &str, uid: &str) -> Value {
    let mut d = details(res, name);
    d["uid"] = Value::String(uid.to_string());
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}
