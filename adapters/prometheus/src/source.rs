//! The [`MetricSource`] over Prometheus: renders every template a decision needs, sends each
//! distinct query once (concurrently), and splits each answer between the versions.
//!
//! iter8-analytics sends a value query and a sample-size query per criterion per version (4 per
//! criterion). Here both versions are read from one query per template: the templates group
//! `by ($entity_labels)`, so one answer holds a series per version, and a version's series is
//! the one whose label set EQUALS its tags (iter8-analytics' rule). Rendered queries that are
//! identical are sent once: the tutorial's two criteria share the sample-size template, so a
//! decision costs 3 queries instead of 8.
//!
//! Queries are evaluated at `time = window end + offset` so that, with the ` offset Ns` that
//! `$offset_str` renders, the range a query covers ends exactly at the window's end.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use iter8_core::measurement::{
    Measurement, MetricError, MetricErrorKind, MetricReadings, MetricsQuery, VersionReading,
    VersionTags,
};
use iter8_core::ports::MetricSource;

use crate::client::{PrometheusClient, Series};
use crate::labels::check_tags;
use crate::render::{RenderContext, interval_and_offset, render};

/// Where one number comes from: a query of the plan, or why there is none.
type Slot = Result<usize, MetricError>;

/// The queries of one decision, before anything is sent (pure; see [`QueryPlan::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// The distinct rendered queries, in first-use order.
    pub queries: Vec<String>,
    /// The evaluation time (`time=`) of every query.
    pub time: DateTime<Utc>,
    /// Per metric: (baseline value, baseline sample, candidate value, candidate sample).
    slots: Vec<[Slot; 4]>,
}

impl QueryPlan {
    /// Renders and deduplicates the queries for `query` as seen from `now`. Bad version labels
    /// or a window that starts after it ends are a `Configuration` error for the whole decision;
    /// a template that cannot be rendered is a `Configuration` error of that metric only.
    pub fn new(query: &MetricsQuery, now: DateTime<Utc>) -> Result<Self, MetricError> {
        let config = |m: String| MetricError::new(MetricErrorKind::Configuration, m);
        check_tags(&query.baseline).map_err(|e| config(format!("baseline: {e}")))?;
        check_tags(&query.candidate).map_err(|e| config(format!("candidate: {e}")))?;
        let (_, offset) =
            interval_and_offset(&query.window, now).map_err(|e| config(e.to_string()))?;
        let time = query.window.end + Duration::seconds(offset.unwrap_or(0));
        let contexts = [&query.baseline, &query.candidate].map(|tags| {
            RenderContext::new(&query.window, now, tags).map_err(|e| config(e.to_string()))
        });

        let mut queries: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut slot = |template: &str, name: &str, ctx: &Result<RenderContext, MetricError>| {
            let ctx = ctx.as_ref().map_err(Clone::clone)?;
            let promql = render(template, ctx)
                .map_err(|e| config(format!("query template `{name}`: {e}")))?;
            Ok(*index.entry(promql.clone()).or_insert_with(|| {
                queries.push(promql);
                queries.len() - 1
            }))
        };
        let slots = query
            .metrics
            .iter()
            .map(|m| {
                let [b, c] = &contexts;
                [
                    slot(&m.query_template, &m.name, b),
                    slot(
                        &m.sample_size_query_template,
                        &m.sample_size_template_name,
                        b,
                    ),
                    slot(&m.query_template, &m.name, c),
                    slot(
                        &m.sample_size_query_template,
                        &m.sample_size_template_name,
                        c,
                    ),
                ]
            })
            .collect();
        Ok(QueryPlan {
            queries,
            time,
            slots,
        })
    }

    /// Builds the readings from the answers (one per query, in order).
    fn readings(
        &self,
        query: &MetricsQuery,
        answers: &[Result<Vec<Series>, MetricError>],
    ) -> Vec<MetricReadings> {
        let pick = |slot: &Slot, tags: &VersionTags| match slot {
            Err(e) => Measurement::Error(e.clone()),
            Ok(i) => match answers.get(*i) {
                Some(Ok(series)) => measurement_for(series, tags),
                Some(Err(e)) => Measurement::Error(e.clone()),
                None => Measurement::Error(MetricError::new(
                    MetricErrorKind::BadResponse,
                    "internal: no answer for a query",
                )),
            },
        };
        query
            .metrics
            .iter()
            .zip(&self.slots)
            .map(|(m, [bv, bs, cv, cs])| MetricReadings {
                metric: m.name.clone(),
                baseline: VersionReading {
                    value: pick(bv, &query.baseline),
                    sample_size: pick(bs, &query.baseline),
                },
                candidate: VersionReading {
                    value: pick(cv, &query.candidate),
                    sample_size: pick(cs, &query.candidate),
                },
            })
            .collect()
    }
}

/// A version's measurement in an answer: the series whose label set equals its tags, or
/// [`Measurement::NoData`] when there is none (empty answer, or only other label sets).
pub fn measurement_for(series: &[Series], tags: &VersionTags) -> Measurement {
    series
        .iter()
        .find(|s| s.labels == *tags)
        .map(|s| Measurement::from_f64(s.value))
        .unwrap_or(Measurement::NoData)
}

/// The readings of one decision and how they were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// One per metric of the query, in order.
    pub readings: Vec<MetricReadings>,
    /// The distinct PromQL queries sent (one HTTP request each, plus retries).
    pub queries: Vec<String>,
    /// The evaluation time of the queries.
    pub time: DateTime<Utc>,
}

/// A clock, so tests and retrospective analyses can fix `now`.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// [`MetricSource`] backed by a Prometheus server.
#[derive(Clone)]
pub struct PrometheusSource {
    client: Arc<PrometheusClient>,
    clock: Clock,
}

impl std::fmt::Debug for PrometheusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSource")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl PrometheusSource {
    /// A source over a client, using the system clock for `now`.
    pub fn new(client: PrometheusClient) -> Self {
        PrometheusSource {
            client: Arc::new(client),
            clock: Arc::new(Utc::now),
        }
    }

    /// Replaces the clock that gives `now` (which decides `$offset_str`).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The client (e.g. to count the HTTP requests sent).
    pub fn client(&self) -> &PrometheusClient {
        &self.client
    }

    /// Measures every metric of `query` for both versions, as seen from `now`.
    ///
    /// Returns `Err` when the whole decision cannot be measured: bad version labels, a window
    /// that starts after it ends, or Prometheus unreachable (or timing out) for every query.
    /// Any other failure is a [`Measurement::Error`] of the numbers it affects.
    pub async fn measure_at(
        &self,
        query: &MetricsQuery,
        now: DateTime<Utc>,
    ) -> Result<Measured, MetricError> {
        let plan = QueryPlan::new(query, now)?;
        let answers = join_all(plan.queries.iter().map(|q| self.client.query(q, plan.time))).await;
        let transport_down = !answers.is_empty()
            && answers.iter().all(|a| {
                a.as_ref().is_err_and(|e| {
                    matches!(
                        e.kind,
                        MetricErrorKind::Unreachable | MetricErrorKind::Timeout
                    )
                })
            });
        if transport_down && let Some(Err(e)) = answers.first() {
            return Err(e.clone());
        }
        Ok(Measured {
            readings: plan.readings(query, &answers),
            time: plan.time,
            queries: plan.queries,
        })
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        self.measure_at(query, (self.clock)())
            .await
            .map(|m| m.readings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use iter8_core::MetricsConfig;
    use iter8_core::measurement::Window;

    fn tags(w: &str) -> VersionTags {
        VersionTags::from([
            ("destination_workload".to_string(), w.to_string()),
            (
                "destination_workload_namespace".to_string(),
                "bookinfo".to_string(),
            ),
        ])
    }

    fn tutorial_query() -> MetricsQuery {
        let config = MetricsConfig::stock_telemetry_v2();
        let t = Utc.timestamp_opt(1_704_067_200, 0).single().unwrap();
        MetricsQuery {
            window: Window {
                start: t - Duration::seconds(1800),
                end: t,
            },
            baseline: tags("reviews-v2").into(),
            candidate: tags("reviews-v3").into(),
            metrics: vec![
                config.metric("iter8_latency").unwrap(),
                config.metric("iter8_error_rate").unwrap(),
            ],
        }
    }

    #[test]
    fn tutorial_decision_needs_three_queries() {
        let q = tutorial_query();
        let plan = QueryPlan::new(&q, q.window.end).unwrap();
        assert_eq!(plan.queries.len(), 3, "{:#?}", plan.queries);
        assert_eq!(plan.time, q.window.end);
        // iter8-analytics: value + sample size, per criterion, per version.
        assert_eq!(q.metrics.len() * 2 * 2, 8);
        assert!(plan.queries.iter().all(|p| p.contains("[1800s]")
            && p.contains("by (destination_workload,destination_workload_namespace)")));
    }

    #[test]
    fn offset_shifts_the_evaluation_time() {
        let q = tutorial_query();
        let now = q.window.end + Duration::milliseconds(300_700);
        let plan = QueryPlan::new(&q, now).unwrap();
        assert!(
            plan.queries[0].contains("[1800s] offset 300s"),
            "{}",
            plan.queries[0]
        );
        assert_eq!(plan.time, q.window.end + Duration::seconds(300));
    }

    #[test]
    fn bad_labels_fail_the_decision() {
        let mut q = tutorial_query();
        std::sync::Arc::make_mut(&mut q.candidate)
            .insert("destination_workload".into(), "x'}) or vector(1".into());
        let err = QueryPlan::new(&q, q.window.end).unwrap_err();
        assert_eq!(err.kind, MetricErrorKind::Configuration);
        assert!(err.message.starts_with("candidate: "), "{}", err.message);
    }

    #[test]
    fn a_bad_template_fails_only_its_metric() {
        let mut q = tutorial_query();
        q.metrics[0].query_template = "sum(x[$window])".into();
        let plan = QueryPlan::new(&q, q.window.end).unwrap();
        let answers: Vec<_> = plan.queries.iter().map(|_| Ok(vec![])).collect();
        let r = plan.readings(&q, &answers);
        let e = r[0].baseline.value.error().unwrap();
        assert_eq!(e.kind, MetricErrorKind::Configuration);
        assert!(
            e.message.contains("`iter8_latency`") && e.message.contains("$window"),
            "{}",
            e.message
        );
        assert_eq!(r[0].baseline.sample_size, Measurement::NoData);
        assert_eq!(r[1].candidate.value, Measurement::NoData);
    }

    #[test]
    fn series_match_only_on_equal_label_sets() {
        let s = |labels: &[(&str, &str)], v: f64| Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: v,
        };
        let series = vec![
            s(
                &[
                    ("destination_workload", "reviews-v2"),
                    ("destination_workload_namespace", "bookinfo"),
                    ("pod", "x"),
                ],
                1.0,
            ),
            s(&[("destination_workload", "reviews-v2")], 2.0),
            s(
                &[
                    ("destination_workload", "reviews-v3"),
                    ("destination_workload_namespace", "bookinfo"),
                ],
                f64::NAN,
            ),
        ];
        assert_eq!(
            measurement_for(&series, &tags("reviews-v2")),
            Measurement::NoData
        );
        assert_eq!(
            measurement_for(&series, &tags("reviews-v3")),
            Measurement::NaN
        );
        assert_eq!(
            measurement_for(&[], &tags("reviews-v3")),
            Measurement::NoData
        );
    }
}
