//! Checks on the labels that identify a version, before they go anywhere near a query.
//!
//! Tag keys become `$entity_labels` inside `by (...)`, so they must be Prometheus label names.
//! Tag values are Kubernetes object names (a Deployment or Service, and a namespace): they must be
//! DNS-1123 subdomains, and namespaces DNS-1123 labels. Anything else (quotes, braces, commas,
//! spaces, upper case) is rejected, so a value from a user cannot change a query.

use iter8_core::measurement::VersionTags;

/// Why a version label was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The key is not a Prometheus label name.
    #[error("version label key `{0}` is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")]
    Key(String),
    /// The value is not a Kubernetes name.
    #[error(
        "version label `{key}` = {value:?} is not a Kubernetes name ({rule}: lowercase letters, digits and '-'{dots}, starting and ending with a letter or digit, at most {max} characters)"
    )]
    Value {
        /// The label's key.
        key: String,
        /// The rejected value.
        value: String,
        /// Which rule applies.
        rule: &'static str,
        /// `", '.'"` for subdomains.
        dots: &'static str,
        /// The length limit.
        max: usize,
    },
}

/// Whether `name` is a Prometheus label name.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether `s` is a DNS-1123 label (a namespace name): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, <= 63.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_part(s)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` of any length.
fn is_label_part(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// Whether `s` is a DNS-1123 subdomain (most object names): dot-separated parts, <= 253
/// characters (Kubernetes' `IsDNS1123Subdomain`).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_part)
}

/// Checks one version's tags: keys are label names; values of keys ending in `namespace` are
/// DNS-1123 labels, other values DNS-1123 subdomains.
pub fn check_tags(tags: &VersionTags) -> Result<(), LabelError> {
    for (key, value) in tags {
        if !is_label_name(key) {
            return Err(LabelError::Key(key.clone()));
        }
        let (ok, rule, dots, max) = if key.ends_with("namespace") {
            (is_dns1123_label(value), "DNS-1123 label", "", 63)
        } else {
            (
                is_dns1123_subdomain(value),
                "DNS-1123 subdomain",
                ", '.'",
                253,
            )
        };
        if !ok {
            return Err(LabelError::Value {
                key: key.clone(),
                value: value.clone(),
                rule,
                dots,
                max,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> VersionTags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubernetes_names_pass() {
        let t = tags(&[
            ("destination_workload", "reviews-v2"),
            ("destination_workload_namespace", "bookinfo-iter8"),
        ]);
        assert_eq!(check_tags(&t), Ok(()));
        assert_eq!(
            check_tags(&tags(&[("destination_service_name", "reviews.v2")])),
            Ok(())
        );
    }

    #[test]
    fn injection_attempts_are_rejected() {
        for bad in [
            "reviews'} or vector(1) #",
            "a\"b",
            "Reviews",
            "-a",
            "a-",
            "",
            "a b",
            "a,b",
            "a}",
            "a..b",
        ] {
            let err = check_tags(&tags(&[("destination_workload", bad)])).unwrap_err();
            assert!(
                err.to_string().contains("not a Kubernetes name"),
                "{bad}: {err}"
            );
        }
        let long = "a".repeat(64);
        assert!(check_tags(&tags(&[("destination_workload_namespace", &long)])).is_err());
        assert!(check_tags(&tags(&[("destination_workload", &long)])).is_ok());
        assert!(check_tags(&tags(&[("destination_workload_namespace", "a.b")])).is_err());
        assert_eq!(
            check_tags(&tags(&[("bad key", "x")])),
            Err(LabelError::Key("bad key".into()))
        );
        assert!(check_tags(&tags(&[("le),x(", "x")])).is_err());
    }
}
