//! Reading Envoy's per-cluster request counters from `/stats/prometheus` (text exposition).

use std::collections::BTreeMap;

/// The request counters of one cluster (one version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterCounters {
    /// `envoy_cluster_upstream_rq_total`.
    pub requests: u64,
    /// `envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}` (absent before the first 5xx).
    pub errors_5xx: u64,
}

/// Per-cluster counters, by cluster name.
pub type CounterSnapshot = BTreeMap<String, ClusterCounters>;

/// The value of label `name` in a `{a="x",b="y"}` label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

/// Extracts per-cluster request and 5xx counts from a `/stats/prometheus` answer.
pub fn parse_cluster_counters(text: &str) -> CounterSnapshot {
    let mut out = CounterSnapshot::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((metric, labels)) = series.split_once('{') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let Some(cluster) = label(labels, "envoy_cluster_name") else {
            continue;
        };
        let count = value.max(0.0) as u64;
        match metric {
            "envoy_cluster_upstream_rq_total" => {
                out.entry(cluster.to_string()).or_default().requests = count;
            }
            "envoy_cluster_upstream_rq_xx"
                if label(labels, "envoy_response_code_class") == Some("5") =>
            {
                out.entry(cluster.to_string()).or_default().errors_5xx = count;
            }
            _ => {}
        }
    }
    out
}

/// What each cluster served between two snapshots.
pub fn served_between(before: &CounterSnapshot, after: &CounterSnapshot) -> CounterSnapshot {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            (
                name.clone(),
                ClusterCounters {
                    // A restarted Envoy starts from 0: count from there.
                    requests: if a.requests >= b.requests {
                        a.requests - b.requests
                    } else {
                        a.requests
                    },
                    errors_5xx: if a.errors_5xx >= b.errors_5xx {
                        a.errors_5xx - b.errors_5xx
                    } else {
                        a.errors_5xx
                    },
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{envoy_cluster_name="reviews-v2"} 28
envoy_cluster_upstream_rq_total{envoy_cluster_name="reviews-v3"} 7
envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="reviews-v3"} 5
envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="reviews-v3"} 2
envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="reviews-v3",le="0.5"} 0
"#;

    #[test]
    fn counters_are_read_per_cluster() {
        let s = parse_cluster_counters(TEXT);
        assert_eq!(s["reviews-v2"].requests, 28);
        assert_eq!(s["reviews-v2"].errors_5xx, 0);
        assert_eq!(s["reviews-v3"].errors_5xx, 2);
    }

    #[test]
    fn served_is_the_difference_and_survives_a_restart() {
        let before = parse_cluster_counters(TEXT);
        let mut after = before.clone();
        after.get_mut("reviews-v2").unwrap().requests = 40;
        after.get_mut("reviews-v3").unwrap().requests = 3; // restarted
        let d = served_between(&before, &after);
        assert_eq!(d["reviews-v2"].requests, 12);
        assert_eq!(d["reviews-v3"].requests, 3);
    }
}
