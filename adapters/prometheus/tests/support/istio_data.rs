//! Synthetic Istio series with exactly known answers.
//!
//! Every counter starts at 1000 and grows by a fixed amount every 10 s, from `T_END - 2h` to
//! `T_END + 10m`. Windows are aligned to samples, so `increase()` over them is exact (no
//! extrapolation). Both telemetry flavours are written: v2 (`job="envoy-stats"`, milliseconds)
//! and v1 (`job="istio-mesh"`, seconds).
//!
//! Over 1800 s (180 steps), with `reporter="source"`:
//!
//! | workload   | requests | 5xx  | mean latency | p90      |
//! |------------|----------|------|--------------|----------|
//! | reviews-v2 | 3600     | none (no 5xx series) | 56.25 ms | 175 ms |
//! | reviews-v3 | 1800     | 180  | 62.5 ms      | 212.5 ms |
//! | reviews-v4 | 0 (series exist, flat) | 0 | 0/0 = NaN | NaN |
//! | reviews-v5 | no series at all |  |        |          |
//!
//! `reporter="destination"` series for reviews-v2 grow by 999 per step and must be filtered out.

use std::fmt::Write;

/// The end of the reference window: 2024-01-01T00:00:00Z.
pub const T_END: i64 = 1_704_067_200;
/// The namespace of every workload.
pub const NAMESPACE: &str = "bookinfo-iter8";
/// Seconds between samples.
pub const STEP: i64 = 10;
const T_FIRST: i64 = T_END - 7200;
const T_LAST: i64 = T_END + 600;

struct Flavour {
    job: &'static str,
    unit: f64,
    les: [&'static str; 5],
}

const V2: Flavour = Flavour {
    job: "envoy-stats",
    unit: 1.0,
    les: ["50", "100", "250", "500", "+Inf"],
};
const V1: Flavour = Flavour {
    job: "istio-mesh",
    unit: 0.001,
    les: ["0.05", "0.1", "0.25", "0.5", "+Inf"],
};

struct Workload {
    name: &'static str,
    ok_per_step: f64,
    /// (response code, per step)
    errors: Option<(&'static str, f64)>,
    /// Milliseconds of latency added per step.
    latency_ms_per_step: f64,
    /// Cumulative bucket increments per step, one per `le`.
    buckets: [f64; 5],
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "reviews-v2",
        ok_per_step: 20.0,
        errors: None,
        latency_ms_per_step: 1125.0,
        buckets: [10.0, 16.0, 20.0, 20.0, 20.0],
    },
    Workload {
        name: "reviews-v3",
        ok_per_step: 9.0,
        errors: Some(("500", 1.0)),
        latency_ms_per_step: 625.0,
        buckets: [2.0, 6.0, 10.0, 10.0, 10.0],
    },
    Workload {
        name: "reviews-v4",
        ok_per_step: 0.0,
        errors: Some(("503", 0.0)),
        latency_ms_per_step: 0.0,
        buckets: [0.0; 5],
    },
];

fn series(out: &mut String, name: &str, labels: &str, per_step: f64) {
    let mut k = 0i64;
    let mut t = T_FIRST;
    while t <= T_LAST {
        let v = 1000.0 + per_step * k as f64;
        let _ = writeln!(out, "{name}{{{labels}}} {v} {t}");
        k += 1;
        t += STEP;
    }
}

/// The OpenMetrics text of every series (ends with `# EOF`).
pub fn openmetrics() -> String {
    let mut out = String::new();
    for f in [V2, V1] {
        let unit_name = if f.unit == 1.0 {
            "milliseconds"
        } else {
            "seconds"
        };
        for w in &WORKLOADS {
            let base = format!(
                "job=\"{}\",reporter=\"source\",source_workload=\"productpage-v1\",destination_workload=\"{}\",destination_workload_namespace=\"{NAMESPACE}\"",
                f.job, w.name
            );
            let requests = w.ok_per_step + w.errors.map_or(0.0, |e| e.1);
            series(
                &mut out,
                "istio_requests_total",
                &format!("{base},response_code=\"200\""),
                w.ok_per_step,
            );
            if let Some((code, n)) = w.errors {
                series(
                    &mut out,
                    "istio_requests_total",
                    &format!("{base},response_code=\"{code}\""),
                    n,
                );
            }
            let d = format!("istio_request_duration_{unit_name}");
            series(&mut out, &format!("{d}_count"), &base, requests);
            series(
                &mut out,
                &format!("{d}_sum"),
                &base,
                w.latency_ms_per_step * f.unit,
            );
            for (le, n) in f.les.iter().zip(w.buckets) {
                series(
                    &mut out,
                    &format!("{d}_bucket"),
                    &format!("{base},le=\"{le}\""),
                    n,
                );
            }
        }
        // Same workload seen by the destination's proxy: must not be counted.
        series(
            &mut out,
            "istio_requests_total",
            &format!(
                "job=\"{}\",reporter=\"destination\",destination_workload=\"reviews-v2\",destination_workload_namespace=\"{NAMESPACE}\",response_code=\"200\"",
                f.job
            ),
            999.0,
        );
    }
    out.push_str("# EOF\n");
    out
}
