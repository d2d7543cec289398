//! Patch arithmetic: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the field sets
//! server-side apply tracks.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Applies a JSON merge patch: objects merge, `null` deletes, everything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Applies a JSON patch (`add`, `remove`, `replace`, `test`, `move`, `copy`).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or_else(|| "a JSON patch must be an array".to_string())?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        match kind {
            "add" => add(target, path, value(op)?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value(op)?)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value(op)?) {
                    return Err(format!("the test at {path} failed"));
                }
            }
            "move" | "copy" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or("");
                let v = if kind == "move" {
                    remove(target, from)?
                } else {
                    target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("no value at {from}"))?
                };
                add(target, path, v)?;
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn value(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "a JSON patch operation lacks its value".to_string())
}

fn split(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            if last == "-" {
                a.push(v);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index in {path}"))?;
            if i > a.len() {
                return Err(format!("index out of range in {path}"));
            }
            a.insert(i, v);
            Ok(())
        }
        _ => Err(format!("no parent for {path}")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => m.remove(&last).ok_or_else(|| format!("no value at {path}")),
        Some(Value::Array(a)) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index in {path}"))?;
            if i >= a.len() {
                return Err(format!("no value at {path}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("no value at {path}")),
    }
}

/// The leaves of an object as JSON pointers (arrays are atomic leaves), skipping the metadata
/// the server owns.
pub fn leaves(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    collect(v, String::new(), &mut out);
    out.retain(|path, _| {
        !path.starts_with("/metadata/")
            || path.starts_with("/metadata/labels/")
            || path.starts_with("/metadata/annotations/")
            || path == "/metadata/finalizers"
    });
    out.remove("/apiVersion");
    out.remove("/kind");
    out
}

fn collect(v: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                collect(child, format!("{prefix}/{key}"), out);
            }
        }
        other => {
            if !prefix.is_empty() {
                out.insert(prefix, other.clone());
            }
        }
    }
}

/// Removes the value at a JSON pointer, and parents left empty.
pub fn remove_path(target: &mut Value, path: &str) {
    let _ = remove(target, path);
    let mut parent = path;
    while let Some((p, _)) = parent.rsplit_once('/') {
        if p.is_empty() {
            break;
        }
        match target.pointer(p) {
            Some(Value::Object(m)) if m.is_empty() => {
                let _ = remove(target, p);
            }
            _ => break,
        }
        parent = p;
    }
}
