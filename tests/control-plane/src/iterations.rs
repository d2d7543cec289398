//! The iterations an experiment went through, read from its recorded versions ([`History`]
//! or the operator binary's `kubectl get --watch`), and the check the operator tests make of
//! them.
//!
//! [`History`]: crate::History

use serde_json::Value;

/// The iterations a history went through, in order: each distinct (`currentIteration`,
/// `lastIncrementTime`) after the first increment. An iteration run twice shows as a repeated
/// number, a lost one as a gap.
pub fn iterations(history: &[Value]) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for exp in history {
        let s = &exp["status"];
        let Some(n) = s["currentIteration"].as_u64().filter(|n| *n > 0) else {
            continue;
        };
        let at = s["lastIncrementTime"].as_str().unwrap_or("").to_string();
        if out.last() != Some(&(n, at.clone())) {
            out.push((n, at));
        }
    }
    out
}

/// Fails unless `runs` (see [`iterations`]) are iterations 1..=`n`, each once, in order and
/// `interval` seconds or more apart.
pub fn assert_iterations_once(runs: &[(u64, String)], n: u64, interval: f64) {
    assert_eq!(
        runs.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "{runs:#?}"
    );
    for pair in runs.windows(2) {
        // Never early either: each iteration one interval or more after the previous one.
        assert!(
            seconds_between(&pair[0].1, &pair[1].1) >= interval,
            "increments in order, an interval apart: {runs:#?}"
        );
    }
}

/// Seconds from one RFC 3339 timestamp to another.
pub fn seconds_between(from: &str, to: &str) -> f64 {
    let from = chrono::DateTime::parse_from_rfc3339(from).expect("a timestamp");
    let to = chrono::DateTime::parse_from_rfc3339(to).expect("a timestamp");
    (to - from).as_seconds_f64()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(n: u64, time: &str) -> Value {
        json!({"status": {"currentIteration": n, "lastIncrementTime": time}})
    }

    #[test]
    fn each_increment_counts_once_and_a_repeat_shows() {
        let history = [
            json!({"status": {}}),
            at(1, "2026-01-01T00:00:00Z"),
            at(1, "2026-01-01T00:00:00Z"),
            at(2, "2026-01-01T00:00:01Z"),
            at(2, "2026-01-01T00:00:02Z"),
        ];
        assert_eq!(
            iterations(&history),
            [
                (1, "2026-01-01T00:00:00Z".to_string()),
                (2, "2026-01-01T00:00:01Z".to_string()),
                (2, "2026-01-01T00:00:02Z".to_string()),
            ]
        );
    }

    #[test]
    fn iterations_an_interval_apart_pass() {
        let runs = iterations(&[at(1, "2026-01-01T00:00:00Z"), at(2, "2026-01-01T00:00:01Z")]);
        assert_iterations_once(&runs, 2, 1.0);
    }

    #[test]
    #[should_panic(expected = "an interval apart")]
    fn an_early_iteration_fails() {
        let runs = iterations(&[
            at(1, "2026-01-01T00:00:00Z"),
            at(2, "2026-01-01T00:00:00.5Z"),
        ]);
        assert_iterations_once(&runs, 2, 1.0);
    }

    #[test]
    #[should_panic]
    fn a_repeated_iteration_fails() {
        let runs = iterations(&[at(1, "2026-01-01T00:00:00Z"), at(1, "2026-01-01T00:00:05Z")]);
        assert_iterations_once(&runs, 1, 1.0);
    }
}
