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

    /// A server-side apply conflict with other field managers (409), worded as the real
    /// server's (`Apply failed with 1 conflict: conflict with "m": .spec.x`); `fields` are
    /// (field path, manager as printed). As there, `details` holds only the causes.
    pub fn apply_conflict(fields: &[(String, String)]) -> ApiError {
        let causes: Vec<Value> = fields
            .iter()
            .map(|(field, manager)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {manager}"),
                    "field": field,
                })
            })
            .collect();
        let message = match fields {
            [(field, manager)] => {
                format!("Apply failed with 1 conflict: conflict with {manager}: {field}")
            }
            _ => {
                let mut by_manager: std::collections::BTreeMap<&str, Vec<&str>> =
                    std::collections::BTreeMap::new();
                for (field, manager) in fields {
                    by_manager.entry(manager).or_default().push(field);
                }
                let lines: Vec<String> = by_manager
                    .iter()
                    .flat_map(|(manager, paths)| {
                        std::iter::once(format!("conflicts with {manager}:"))
                            .chain(paths.iter().map(|p| format!("- {p}")))
                    })
                    .collect();
                format!(
                    "Apply failed with {} conflicts: {}",
                    fields.len(),
                    lines.join("\n")
                )
            }
        };
        ApiError {
            code: 409,
            reason: "Conflict",
            message,
            details: Some(json!({ "causes": causes })),
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

    /// A verb the resource does not serve (405), as the real server words it.
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// A path the server does not serve (an unknown resource, or a subresource it lacks).
    pub fn path_not_found() -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// Apply without `fieldManager` (422, about the `PatchOptions`, not the object).
    pub fn apply_needs_field_manager() -> ApiError {
        ApiError {
            code: 422,
            reason: "Invalid",
            message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            details: Some(json!({
                "group": "meta.k8s.io",
                "kind": "PatchOptions",
                "causes": [{
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager"
                }]
            })),
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

    /// The resource version asked for was compacted away (410 `Expired`); `oldest` is the
    /// oldest one still available.
    pub fn expired(rv: u64, oldest: u64) -> ApiError {
        ApiError {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {rv} ({oldest})"),
            details: None,
        }
    }

    /// A resource version the server has not reached (504 `Timeout`, with the
    /// `ResourceVersionTooLarge` cause clients look for).
    pub fn too_large(rv: u64, current: u64) -> ApiError {
        ApiError {
            code: 504,
            reason: "Timeout",
            message: format!("Timeout: Too large resource version: {rv}, current: {current}"),
            details: Some(json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1
            })),
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
