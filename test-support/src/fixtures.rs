//! Files of the repository, by their path from its root (`examples/bookinfo/...`), so tests of
//! crates at any depth name them the same way.

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    // This crate is `<root>/test-support`.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support has a parent directory")
        .to_path_buf()
}

/// The text of a repository file; panics naming the file if it cannot be read.
pub fn read(path_from_root: &str) -> String {
    let path = repo_root().join(path_from_root);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A repository file parsed as JSON; panics naming the file if it is not JSON.
pub fn json(path_from_root: &str) -> serde_json::Value {
    serde_json::from_str(&read(path_from_root))
        .unwrap_or_else(|e| panic!("{path_from_root}: not JSON: {e}"))
}

/// An instant-query answer (`resultType: vector`) with one sample per label set, as Prometheus'
/// `/api/v1/query` gives it.
pub fn vector(samples: &[(serde_json::Value, &str)]) -> serde_json::Value {
    let result: Vec<_> = samples
        .iter()
        .map(|(metric, value)| serde_json::json!({"metric": metric, "value": [1_700_000_000.0, value]}))
        .collect();
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}
