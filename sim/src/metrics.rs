//! The simulated Prometheus: answers iter8's metric queries from the traffic counters the way
//! Prometheus answers the stock query templates over the same requests.
//!
//! A template is recognised by its shape: `histogram_quantile(q, ...)` is a latency quantile,
//! a `_sum` over a `_count` is the mean latency, `response_code=~'5..'` counts 5xx (divided by
//! all requests: the error rate), `istio_requests_total` counts requests. A metric whose value a
//! version profile gives (`metrics:`) takes that value. The window is `[end - $interval, end)`
//! with `$interval` the whole seconds from the experiment's start (at least 1), as iter8 fills
//! the templates in. No series gives `NoData`; `0/0` gives NaN.

use std::sync::Arc;

use async_trait::async_trait;
use iter8_core::measurement::{
    Measurement, MetricError, MetricErrorKind, MetricReadings, MetricsQuery, VersionReading,
    VersionTags, Window,
};
use iter8_core::metrics_config::Metric;
use iter8_core::ports::MetricSource;
use rustc_hash::FxHashMap;

use crate::clock::SimTime;
use crate::traffic::{HISTOGRAM_LEN, LATENCY_BOUNDS_MS, Totals, Traffic};
use crate::world::World;

/// What a query template computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    /// Requests completed (`istio_requests_total`).
    Requests,
    /// 5xx answers.
    Errors,
    /// 5xx answers over all requests.
    ErrorRate,
    /// Latency sum over latency count (ms).
    MeanLatency,
    /// `histogram_quantile(q, ...)` over the latency histogram (ms); `seconds` when the
    /// template reads the telemetry-v1 histogram (its buckets are coarser).
    Quantile {
        /// The quantile (0.9 for p90).
        q: f64,
        /// Whether the template reads `istio_request_duration_seconds_bucket`.
        seconds: bool,
    },
}

/// Recognises a query template; `None` when the simulator cannot compute it.
pub fn classify(template: &str) -> Option<MetricKind> {
    let t: String = template
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    if let Some(rest) = t.split("histogram_quantile(").nth(1) {
        let q = rest.split(',').next()?.parse::<f64>().ok()?;
        return Some(MetricKind::Quantile {
            q,
            seconds: t.contains("duration_seconds_bucket"),
        });
    }
    if t.contains("request_duration") && t.contains("_sum") && t.contains("_count") {
        return Some(MetricKind::MeanLatency);
    }
    if t.contains("response_code=~'5..'") {
        return Some(if t.contains(")/") || t.contains("/sum(") {
            MetricKind::ErrorRate
        } else {
            MetricKind::Errors
        });
    }
    if t.contains("istio_requests_total") {
        return Some(MetricKind::Requests);
    }
    None
}

/// Why the simulator cannot answer a metric, as a message for users.
pub fn unsupported(metric: &Metric) -> String {
    format!(
        "the simulator cannot compute metric `{}` from its query template; give its value per version in the profile (versions.<name>.metrics.{})",
        metric.name, metric.name
    )
}

/// Whether the simulator can answer a metric (from its template or a profile).
pub fn supported(traffic: &Traffic, metric: &Metric) -> bool {
    traffic.profile_gives(&metric.name)
        || (classify(&metric.query_template).is_some()
            && classify(&metric.sample_size_query_template).is_some())
}

/// Prometheus' `histogram_quantile` over non-cumulative bucket counts with these upper bounds
/// (the last count is the `+Inf` bucket).
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let total: u64 = counts.iter().sum();
    if total == 0 || bounds.is_empty() {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (b, &count) in counts.iter().enumerate() {
        let cumulative = below + count;
        if cumulative as f64 >= rank || b + 1 == counts.len() {
            if b >= bounds.len() {
                // The +Inf bucket: the highest finite bound.
                return bounds[bounds.len() - 1];
            }
            let end = bounds[b];
            if b == 0 && end <= 0.0 {
                return end;
            }
            let start = if b == 0 { 0.0 } else { bounds[b - 1] };
            return start + (end - start) * ((rank - below as f64) / count as f64);
        }
        below = cumulative;
    }
    f64::NAN
}

/// The telemetry-v1 latency buckets, in ms (Mixer's seconds buckets times 1000).
const V1_BOUNDS_MS: [f64; 11] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

fn quantile(q: f64, seconds: bool, t: &Totals) -> f64 {
    if !seconds {
        return histogram_quantile(q, &LATENCY_BOUNDS_MS, &t.histogram);
    }
    // Fold the telemetry-v2 buckets into v1's (every v1 bound is a v2 bound).
    let mut counts = [0u64; V1_BOUNDS_MS.len() + 1];
    for (i, c) in t.histogram.iter().enumerate() {
        let upper = LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(f64::INFINITY);
        let j = V1_BOUNDS_MS.partition_point(|b| *b < upper);
        counts[j] += c;
    }
    debug_assert_eq!(t.histogram.len(), HISTOGRAM_LEN);
    histogram_quantile(q, &V1_BOUNDS_MS, &counts)
}

/// The window a query covers: `[end - $interval, end)`.
pub fn query_window(window: &Window) -> (SimTime, SimTime) {
    let end = SimTime::from_datetime(window.end);
    (SimTime(end.millis() - window.interval_secs() * 1000), end)
}

/// What a version's series say over a window: computed once per decision and version.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Observed {
    /// A series exists (a request completed before the window's end).
    pub exists: bool,
    /// A 5xx series exists.
    pub errors_exist: bool,
    /// The counters over the window.
    pub totals: Totals,
}

/// Sums the version's series over `[from, to)`.
pub fn observe(traffic: &Traffic, tags: &VersionTags, from: SimTime, to: SimTime) -> Observed {
    let mut o = Observed::default();
    for s in traffic.matching(tags) {
        o.exists |= s.exists_at(to);
        o.errors_exist |= s.errors_exist_at(to);
        o.totals.add(&s.totals(from, to));
    }
    o
}

/// The value of a metric kind over what was observed.
pub fn evaluate(kind: MetricKind, o: &Observed) -> Measurement {
    if !o.exists {
        return Measurement::NoData;
    }
    let t = &o.totals;
    let ratio = |a: f64, b: f64| Measurement::from_f64(a / b);
    match kind {
        MetricKind::Requests => Measurement::Value(t.requests as f64),
        MetricKind::Errors if !o.errors_exist => Measurement::NoData,
        MetricKind::Errors => Measurement::Value(t.errors as f64),
        MetricKind::ErrorRate if !o.errors_exist => Measurement::NoData,
        MetricKind::ErrorRate => ratio(t.errors as f64, t.requests as f64),
        MetricKind::MeanLatency => ratio(t.latency_sum_ms, t.requests as f64),
        MetricKind::Quantile { q, seconds } => Measurement::from_f64(quantile(q, seconds, t)),
    }
}

fn given(traffic: &Traffic, tags: &VersionTags, metric: &str, to: SimTime) -> Measurement {
    let series = traffic.matching(tags);
    series
        .iter()
        .filter(|s| s.exists_at(to))
        .find_map(|s| traffic.profile(&s.workload, &s.service))
        .and_then(|p| p.metrics.get(metric))
        .map_or(Measurement::NoData, |v| Measurement::from_f64(*v))
}

/// Template -> what it computes, remembered by the template's text (templates repeat on every
/// decision).
#[derive(Debug, Clone, Default)]
pub struct KindCache(FxHashMap<Arc<str>, Option<MetricKind>>);

impl KindCache {
    /// [`classify`], remembered.
    pub fn classify(&mut self, template: &Arc<str>) -> Option<MetricKind> {
        *self
            .0
            .entry(template.clone())
            .or_insert_with(|| classify(template))
    }
}

/// What a metric's two templates compute (classified once per query, not per version).
struct MetricKinds {
    value: Option<MetricKind>,
    sample_size: Option<MetricKind>,
}

fn reading(
    kinds: &MetricKinds,
    traffic: &Traffic,
    tags: &VersionTags,
    observed: &Observed,
    metric: &Metric,
    to: SimTime,
) -> VersionReading {
    let error = |m: &Metric| {
        Measurement::Error(MetricError::new(
            MetricErrorKind::Configuration,
            unsupported(m),
        ))
    };
    let value = if traffic.profile_gives(&metric.name) {
        given(traffic, tags, &metric.name, to)
    } else {
        match kinds.value {
            Some(kind) => evaluate(kind, observed),
            None => error(metric),
        }
    };
    let sample_size = match kinds.sample_size {
        Some(kind) => evaluate(kind, observed),
        None => error(metric),
    };
    VersionReading { value, sample_size }
}

/// Measures every metric of a query over the traffic generated so far.
pub fn measure(
    kinds: &mut KindCache,
    traffic: &Traffic,
    query: &MetricsQuery,
) -> Vec<MetricReadings> {
    let (from, to) = query_window(&query.window);
    let b = observe(traffic, &query.baseline, from, to);
    let c = observe(traffic, &query.candidate, from, to);
    readings(kinds, traffic, query, &b, &c, to)
}

fn readings(
    kinds: &mut KindCache,
    traffic: &Traffic,
    query: &MetricsQuery,
    b: &Observed,
    c: &Observed,
    to: SimTime,
) -> Vec<MetricReadings> {
    query
        .metrics
        .iter()
        .map(|m| {
            let k = MetricKinds {
                value: kinds.classify(&m.query_template),
                sample_size: kinds.classify(&m.sample_size_query_template),
            };
            MetricReadings {
                metric: m.name.clone(),
                baseline: reading(&k, traffic, &query.baseline, b, m, to),
                candidate: reading(&k, traffic, &query.candidate, c, m, to),
            }
        })
        .collect()
}

/// The simulated metrics backend of a [`World`] (plug it into `BuiltinAnalytics`).
pub struct SimMetrics<'a>(pub &'a World);

#[async_trait]
impl MetricSource for SimMetrics<'_> {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        let mut state = self.0.lock();
        let (_, to) = query_window(&query.window);
        state.advance_traffic(to);
        let state = &mut *state;
        Ok(measure(&mut state.kinds, &state.traffic, query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_stock_templates() {
        for (text, metric, kind) in [
            (
                iter8_core::metrics_config::EXTENDED_TELEMETRY_V1,
                "iter8_90_perc_latency",
                MetricKind::Quantile {
                    q: 0.9,
                    seconds: true,
                },
            ),
            (
                iter8_core::metrics_config::EXTENDED_TELEMETRY_V2,
                "iter8_90_perc_latency",
                MetricKind::Quantile {
                    q: 0.9,
                    seconds: false,
                },
            ),
            (
                iter8_core::metrics_config::STOCK_TELEMETRY_V2,
                "iter8_latency",
                MetricKind::MeanLatency,
            ),
            (
                iter8_core::metrics_config::STOCK_TELEMETRY_V1,
                "iter8_latency",
                MetricKind::MeanLatency,
            ),
            (
                iter8_core::metrics_config::STOCK_TELEMETRY_V2,
                "iter8_error_rate",
                MetricKind::ErrorRate,
            ),
            (
                iter8_core::metrics_config::STOCK_TELEMETRY_V1,
                "iter8_error_rate",
                MetricKind::ErrorRate,
            ),
            (
                iter8_core::metrics_config::STOCK_TELEMETRY_V2,
                "iter8_error_count",
                MetricKind::Errors,
            ),
        ] {
            let c = iter8_core::MetricsConfig::from_configmap_yaml(text).unwrap();
            let m = c.metric(metric).unwrap();
            assert_eq!(classify(&m.query_template), Some(kind), "{metric}");
            assert_eq!(
                classify(&m.sample_size_query_template),
                Some(MetricKind::Requests)
            );
        }
        assert_eq!(classify("rate(my_business_metric[5m])"), None);
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let bounds = [10.0, 20.0, 40.0];
        // 10 in (0,10], 10 in (10,20], 0 in (20,40], 0 in +Inf: p90 is 18.
        assert_eq!(histogram_quantile(0.9, &bounds, &[10, 10, 0, 0]), 18.0);
        // Everything above the last bound: the last bound.
        assert_eq!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 5]), 40.0);
        assert!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 0]).is_nan());
        assert_eq!(histogram_quantile(0.5, &bounds, &[4, 0, 0, 0]), 5.0);
    }
}
