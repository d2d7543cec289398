//! Schema-only mirrors of the core's `Experiment` spec and status: they exist to generate the
//! CRD's OpenAPI v3 validation (enums, ranges, required fields). Objects are never read into
//! these types; they are read as JSON and converted by [`crate::crd::to_core`], so that the
//! core's own validation can name every problem.
#![allow(dead_code)]

use schemars::JsonSchema;

/// A Go duration: one or more `<number><unit>` with units ns, us, µs, ms, s, m, h.
const GO_DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// What the user asks for.
pub(crate) struct SpecSchema {
    target_service: TargetServiceSchema,
    traffic_control: Option<TrafficControlSchema>,
    analysis: Option<AnalysisSchema>,
    cleanup: Option<CleanupSchema>,
    routing_reference: Option<RoutingReferenceSchema>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// Routing rules the user owns (a VirtualService or an HTTPRoute) whose weights iter8 shifts.
struct RoutingReferenceSchema {
    api_version: Option<String>,
    kind: Option<String>,
    #[schemars(length(min = 1, max = 253))]
    name: String,
    #[schemars(length(min = 1, max = 63))]
    namespace: Option<String>,
}

#[derive(JsonSchema)]
/// What to do with the losing version when done.
enum CleanupSchema {
    #[serde(rename = "delete")]
    Delete,
}

#[derive(JsonSchema)]
/// What `baseline` and `candidate` name.
enum KindSchema {
    Deployment,
    Service,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// The service and its two versions.
struct TargetServiceSchema {
    kind: Option<KindSchema>,
    #[schemars(extend("enum" = ["", "v1", "apps/v1"]))]
    api_version: Option<String>,
    #[schemars(length(min = 1, max = 253))]
    name: Option<String>,
    #[schemars(length(min = 1, max = 63))]
    namespace: Option<String>,
    #[schemars(length(min = 1, max = 253))]
    baseline: String,
    #[schemars(length(min = 1, max = 253))]
    candidate: String,
    #[schemars(range(min = 1, max = 65535))]
    port: Option<i32>,
    #[schemars(length(max = 64))]
    hosts: Option<Vec<HostSchema>>,
}

#[derive(JsonSchema)]
/// A host reached through an Istio Gateway.
struct HostSchema {
    // Bounded so that the API server can cost the CRD's CEL rule on `targetService`.
    #[schemars(length(min = 1, max = 253))]
    name: String,
    #[schemars(length(min = 1, max = 253))]
    gateway: String,
}

#[derive(JsonSchema)]
/// How the candidate's share is decided.
enum StrategySchema {
    #[serde(rename = "check_and_increment")]
    CheckAndIncrement,
    #[serde(rename = "increment_without_check")]
    IncrementWithoutCheck,
    #[serde(rename = "epsilon_greedy")]
    EpsilonGreedy,
    #[serde(rename = "posterior_bayesian_routing")]
    PosteriorBayesianRouting,
    #[serde(rename = "optimistic_bayesian_routing")]
    OptimisticBayesianRouting,
}

#[derive(JsonSchema)]
/// Where traffic goes after success.
enum OnSuccessSchema {
    #[serde(rename = "candidate")]
    Candidate,
    #[serde(rename = "baseline")]
    Baseline,
    #[serde(rename = "both")]
    Both,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// How traffic moves.
struct TrafficControlSchema {
    strategy: Option<StrategySchema>,
    #[schemars(regex(pattern = GO_DURATION))]
    interval: Option<String>,
    #[schemars(range(min = 1))]
    max_iterations: Option<i64>,
    #[schemars(range(max = 100), extend("minimum" = 0, "exclusiveMinimum" = true))]
    traffic_step_size: Option<f64>,
    #[schemars(range(max = 100), extend("minimum" = 0, "exclusiveMinimum" = true))]
    max_traffic_percentage: Option<f64>,
    on_success: Option<OnSuccessSchema>,
    #[schemars(
        extend("minimum" = 0, "exclusiveMinimum" = true, "maximum" = 1, "exclusiveMaximum" = true)
    )]
    confidence: Option<f64>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// What is measured and how it is judged.
struct AnalysisSchema {
    analytics_service: Option<String>,
    grafana_endpoint: Option<String>,
    success_criteria: Option<Vec<CriterionSchema>>,
    reward: Option<RewardSchema>,
}

#[derive(JsonSchema)]
/// How a criterion compares.
enum ToleranceTypeSchema {
    #[serde(rename = "threshold")]
    Threshold,
    #[serde(rename = "delta")]
    Delta,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// One success criterion.
struct CriterionSchema {
    #[schemars(length(min = 1))]
    metric_name: String,
    tolerance_type: ToleranceTypeSchema,
    tolerance: f64,
    #[schemars(range(min = 0))]
    sample_size: Option<i64>,
    stop_on_failure: Option<bool>,
    #[serde(rename = "min_max")]
    min_max: Option<MinMaxSchema>,
}

#[derive(JsonSchema)]
/// A metric's range.
struct MinMaxSchema {
    min: f64,
    max: f64,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// The reward metric.
struct RewardSchema {
    #[schemars(length(min = 1))]
    metric_name: String,
    #[serde(rename = "min_max")]
    min_max: Option<MinMaxSchema>,
}

#[derive(JsonSchema)]
/// A user action (top-level `action`).
pub(crate) enum ActionSchema {
    #[serde(rename = "pause")]
    Pause,
    #[serde(rename = "resume")]
    Resume,
    #[serde(rename = "override_success")]
    OverrideSuccess,
    #[serde(rename = "override_failure")]
    OverrideFailure,
}

#[derive(JsonSchema)]
/// The experiment's phase.
enum PhaseSchema {
    Progressing,
    Pause,
    Completed,
}

#[derive(JsonSchema)]
/// The condition types.
enum ConditionTypeSchema {
    TargetsProvided,
    MetricsSynced,
    AnalyticsServiceNormal,
    RoutingRulesReady,
    ExperimentCompleted,
    ExperimentSucceeded,
    Ready,
}

#[derive(JsonSchema)]
/// A condition's status.
enum ConditionStatusSchema {
    True,
    False,
    Unknown,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// One condition.
struct ConditionSchema {
    #[serde(rename = "type")]
    type_: ConditionTypeSchema,
    status: ConditionStatusSchema,
    reason: Option<String>,
    message: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    last_transition_time: Option<String>,
}

#[derive(JsonSchema)]
/// The applied split.
struct SplitSchema {
    #[schemars(range(min = 0, max = 100))]
    baseline: i32,
    #[schemars(range(min = 0, max = 100))]
    candidate: i32,
}

/// An object whose fields are kept as written (the assessment).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A time: RFC 3339 as we write it, or int64 Unix nanoseconds as iter8 v0.2.1 wrote it, so that
/// the status of an experiment v0.2.1 started stays valid after an upgrade in place.
fn timestamp(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "RFC 3339 time, or Unix nanoseconds (iter8 v0.2.1)",
        "x-kubernetes-int-or-string": true
    })
}

/// Any JSON value, kept as written (the opaque analytics state).
fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
/// What the controller has done so far.
pub(crate) struct StatusSchema {
    phase: Option<PhaseSchema>,
    message: Option<String>,
    conditions: Option<Vec<ConditionSchema>>,
    #[serde(default)]
    #[schemars(schema_with = "timestamp")]
    create_timestamp: Option<()>,
    #[serde(default)]
    #[schemars(schema_with = "timestamp")]
    start_timestamp: Option<()>,
    #[serde(default)]
    #[schemars(schema_with = "timestamp")]
    end_timestamp: Option<()>,
    #[schemars(extend("format" = "date-time"))]
    last_increment_time: Option<String>,
    #[schemars(range(min = 0))]
    current_iteration: Option<i64>,
    #[schemars(range(min = 0))]
    consecutive_failures: Option<i64>,
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    started_target_service: Option<()>,
    traffic_split_percentage: Option<SplitSchema>,
    #[serde(default)]
    #[schemars(schema_with = "any_object")]
    assessment: Option<()>,
    #[serde(default)]
    #[schemars(schema_with = "any_value")]
    analysis_state: Option<()>,
    #[serde(rename = "grafanaURL")]
    grafana_url: Option<String>,
}
