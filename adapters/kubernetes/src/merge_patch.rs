//! JSON merge patches (RFC 7386) computed from two documents, so that a status write replaces
//! the status exactly: keys that disappeared are sent as `null`.

use serde_json::{Map, Value};

/// The merge patch that turns `old` into `new`.
pub fn diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, ov) in o {
                match n.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(nv) if nv != ov => {
                        patch.insert(k.clone(), diff(ov, nv));
                    }
                    Some(_) => {}
                }
            }
            for (k, nv) in n {
                if !o.contains_key(k) {
                    patch.insert(k.clone(), without_nulls(nv));
                }
            }
            Value::Object(patch)
        }
        (_, n) => without_nulls(n),
    }
}

/// A value whose `null` members are dropped (a merge patch cannot set a member to `null`).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Applies a merge patch (RFC 7386), to check `diff` round-trips.
    fn apply(target: &mut Value, patch: &Value) {
        let Value::Object(p) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        if let Value::Object(t) = target {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    apply(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
    }

    #[test]
    fn the_patch_turns_old_into_new() {
        let old = json!({"phase": "Pause", "assessment": {"a": 1, "b": [1, 2]}, "gone": "x"});
        let new = json!({"phase": "Progressing", "assessment": {"b": [3]}, "added": {"c": 1}});
        let patch = diff(&old, &new);
        assert_eq!(
            patch,
            json!({"phase": "Progressing", "assessment": {"a": null, "b": [3]}, "gone": null, "added": {"c": 1}})
        );
        let mut applied = old.clone();
        apply(&mut applied, &patch);
        assert_eq!(applied, new);
    }

    #[test]
    fn equal_documents_give_an_empty_patch() {
        let v = json!({"a": {"b": 1}});
        assert_eq!(diff(&v, &v), json!({}));
    }
}
