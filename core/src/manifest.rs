//! Reading Experiment manifests: multi-document YAML (or JSON), other kinds skipped, field
//! paths in every error, unknown fields reported instead of silently dropped.

use serde::Serialize;

use crate::model::{Experiment, KIND};

/// A manifest that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ManifestError {
    /// The field path (`spec.trafficControl.maxIterations`), empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// One Experiment document read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDocument {
    /// The document's position in the file (0-based, counting every document).
    pub index: usize,
    /// The experiment.
    pub experiment: Experiment,
    /// Paths of fields this version does not know (e.g. a typo such as `maxIteration`).
    pub unknown_fields: Vec<String>,
}

/// Reads every Experiment of a (multi-document) manifest. Documents of other kinds are skipped.
/// A YAML syntax error fails the whole input; a document that is not a valid Experiment shape
/// gives an error for that document only.
pub fn parse_experiments(
    text: &str,
) -> Result<Vec<Result<ExperimentDocument, ManifestError>>, ManifestError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError {
            path: String::new(),
            message: e.to_string(),
        })?;
    Ok(docs
        .into_iter()
        .enumerate()
        .filter(|(_, d)| d.get("kind").and_then(|k| k.as_str()) == Some(KIND))
        .map(|(index, doc)| parse_document(index, doc))
        .collect())
}

/// Reads one Experiment from a JSON value (e.g. from the Kubernetes API).
pub fn parse_document(
    index: usize,
    doc: serde_json::Value,
) -> Result<ExperimentDocument, ManifestError> {
    let experiment: Experiment =
        serde_path_to_error::deserialize(&doc).map_err(|e| ManifestError {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    let mut unknown_fields = Vec::new();
    if let Ok(known) = serde_json::to_value(&experiment) {
        unknown(&doc, &known, "", &mut unknown_fields);
    }
    Ok(ExperimentDocument {
        index,
        experiment,
        unknown_fields,
    })
}

/// Collects paths present (and not null) in `input` but absent from `known`.
fn unknown(
    input: &serde_json::Value,
    known: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i {
                if path == "metadata" || path == "status.analysisState" {
                    continue;
                }
                match k.get(key) {
                    Some(kv) => unknown(value, kv, &join(key), out),
                    None if value.is_null() => {}
                    // An empty list or map the model omits on output is not unknown.
                    None if value.as_array().is_some_and(|a| a.is_empty())
                        || value.as_object().is_some_and(|o| o.is_empty()) => {}
                    None => out.push(join(key)),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (iv, kv)) in i.iter().zip(k).enumerate() {
                unknown(iv, kv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Writes an experiment as YAML.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, ManifestError> {
    serde_saphyr::to_string(value).map_err(|e| ManifestError {
        path: String::new(),
        message: e.to_string(),
    })
}
