//! The labels iter8 puts on the routing rules it manages, and label helpers.

use std::collections::BTreeMap;

/// Names the host the rules are for (the service FQDN, or the first Gateway host).
pub const HOST: &str = "iter8-tools/host";
/// Names the experiment holding the rules: `<experiment>.<namespace>`.
pub const EXPERIMENT: &str = iter8_core::routing_labels::EXPERIMENT;
/// The rules' stage: [`Role`].
pub const ROLE: &str = iter8_core::routing_labels::ROLE;
/// `"True"` on rules iter8 created (and may therefore delete).
pub const INIT: &str = "iter8-tools/init";
/// The value of [`INIT`].
pub const INIT_TRUE: &str = "True";
/// The field manager of every server-side apply iter8 makes.
pub const FIELD_MANAGER: &str = "iter8";

/// The subset (and destination) name of the baseline.
pub const SUBSET_BASELINE: &str = "baseline";
/// The subset (and destination) name of the candidate.
pub const SUBSET_CANDIDATE: &str = "candidate";

pub use iter8_core::routing_labels::Role;

/// The value of [`EXPERIMENT`] for an experiment: `<name>.<namespace>`.
pub fn experiment_value(name: &str, namespace: &str) -> String {
    label_value(&format!("{name}.{namespace}"))
}

/// The longest label value Kubernetes accepts.
const MAX_LABEL: usize = 63;
/// Hex digits of the hash that ends a shortened label value.
const HASH_DIGITS: usize = 10;

/// Makes `text` a valid label value: at most 63 characters of `[A-Za-z0-9-_.]`, starting and
/// ending with an alphanumeric. Other characters become `-`. A longer value is shortened and
/// ends with `-` and a hash of the whole text, so that two long texts sharing their first 63
/// characters never get the same label.
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.len() <= MAX_LABEL {
        return trimmed.to_string();
    }
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, text.as_bytes());
    let hash = format!("{:016x}", std::hash::Hasher::finish(&hasher));
    let prefix = trimmed[..MAX_LABEL - HASH_DIGITS - 1]
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{}", &hash[..HASH_DIGITS])
}

/// Whether a label value was shortened by [`label_value`] (it no longer names its text).
pub fn is_shortened(value: &str) -> bool {
    value.len() > HASH_DIGITS + 1
        && value.len() <= MAX_LABEL
        && value.len() >= MAX_LABEL - HASH_DIGITS
        && value.rsplit_once('-').is_some_and(|(_, h)| {
            h.len() == HASH_DIGITS && h.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// A label selector matching exactly `key=value`.
pub fn selector(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// Parses `k=v,k2=v2` into labels. Empty input gives no labels.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not of the form key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(format!("`{pair}` has an empty key"));
        }
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// Formats labels as `k=v,k2=v2`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod-template labels Bookinfo uses: `app=<service>,version=<suffix of the Deployment name
/// after its last '-'>` (e.g. `reviews-v3` → `app=reviews,version=v3`).
pub fn bookinfo_labels(service: &str, deployment: &str) -> BTreeMap<String, String> {
    let version = deployment
        .rsplit_once('-')
        .map_or(deployment, |(_, suffix)| suffix);
    BTreeMap::from([
        ("app".to_string(), service.to_string()),
        ("version".to_string(), version.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_valid() {
        assert_eq!(
            experiment_value("reviews-v3-rollout", "bookinfo-iter8"),
            "reviews-v3-rollout.bookinfo-iter8"
        );
        assert_eq!(label_value("-a/b-"), "a-b");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn long_values_end_in_a_hash_instead_of_colliding() {
        let namespace = "bookinfo-iter8";
        let a = experiment_value(&format!("{}-a", "reviews-rollout".repeat(4)), namespace);
        let b = experiment_value(&format!("{}-b", "reviews-rollout".repeat(4)), namespace);
        assert_ne!(a, b);
        for v in [&a, &b] {
            assert!(v.len() <= 63, "{v}");
            assert!(v.starts_with("reviews-rollout"), "{v}");
            assert!(is_shortened(v), "{v}");
        }
        // Stable: the same text always gives the same value.
        assert_eq!(
            a,
            experiment_value(&format!("{}-a", "reviews-rollout".repeat(4)), namespace)
        );
        let short = experiment_value("reviews-v3-rollout", namespace);
        assert!(!is_shortened(&short), "{short}");
    }

    #[test]
    fn parses_and_formats_labels() {
        let labels = parse_labels("app=reviews, version=v3").unwrap();
        assert_eq!(format_labels(&labels), "app=reviews,version=v3");
        assert!(parse_labels("app").is_err());
        assert!(parse_labels("=v").is_err());
        assert!(parse_labels("").unwrap().is_empty());
    }

    #[test]
    fn bookinfo_labels_take_the_suffix() {
        assert_eq!(
            format_labels(&bookinfo_labels("reviews", "reviews-v3")),
            "app=reviews,version=v3"
        );
        assert_eq!(
            format_labels(&bookinfo_labels("web", "web")),
            "app=web,version=web"
        );
    }
}
