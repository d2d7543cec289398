//! `spec`: what the user asks for. Every field is optional in the parse (so that validation can
//! report all problems at once); defaults come from [`ExperimentSpec::with_defaults`] and the
//! accessors.

use serde::{Deserialize, Serialize, Serializer};

use crate::duration::GoDuration;

/// Default `trafficControl.interval`.
pub const DEFAULT_INTERVAL: &str = "1m";
/// Default `trafficControl.maxIterations`.
pub const DEFAULT_MAX_ITERATIONS: i64 = 100;
/// Default `trafficControl.trafficStepSize` (percentage points).
pub const DEFAULT_STEP_SIZE: f64 = 2.0;
/// Default `trafficControl.maxTrafficPercentage`.
pub const DEFAULT_MAX_TRAFFIC_PERCENTAGE: f64 = 50.0;
/// Default `trafficControl.confidence` (Bayesian strategies).
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Default `analysis.analyticsService`.
pub const DEFAULT_ANALYTICS_SERVICE: &str = "http://iter8-analytics.iter8:8080";
/// Default `analysis.grafanaEndpoint`.
pub const DEFAULT_GRAFANA_ENDPOINT: &str = "http://localhost:3000";
/// Default `successCriteria[].sampleSize`.
pub const DEFAULT_SAMPLE_SIZE: i64 = 10;

/// Writes whole numbers without a fraction, as users write them (`20`, not `20.0`).
fn ser_number<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(*x as i64),
        Some(x) => s.serialize_f64(*x),
        None => s.serialize_none(),
    }
}

fn ser_number_req<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    ser_number(&Some(*v), s)
}

/// The experiment's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The service and its two versions.
    #[serde(default)]
    pub target_service: TargetService,
    /// How traffic moves.
    #[serde(default)]
    pub traffic_control: TrafficControl,
    /// What is measured and how it is judged.
    #[serde(default)]
    pub analysis: Analysis,
    /// `delete`: delete the losing version when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Cleanup>,
    /// Routing rules the user already owns (an Istio VirtualService or a Gateway API
    /// HTTPRoute) whose weights iter8 shifts instead of creating its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_reference: Option<RoutingReference>,
}

/// `spec.routingReference`: a Kubernetes ObjectReference to routing rules the user owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoutingReference {
    /// `networking.istio.io/v1alpha3` (VirtualService) or `gateway.networking.k8s.io/v1`
    /// (HTTPRoute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `VirtualService` or `HTTPRoute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's namespace; the experiment's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The `kind` of a Gateway API HTTPRoute reference.
pub const HTTP_ROUTE_KIND: &str = "HTTPRoute";
/// The API group of Gateway API routes.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

impl RoutingReference {
    /// The kind, empty when unset.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("")
    }

    /// The name, empty when unset.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The API group of `apiVersion` (empty for the core group or when unset).
    pub fn group(&self) -> &str {
        let api = self.api_version.as_deref().unwrap_or("");
        api.rsplit_once('/').map_or("", |(group, _)| group)
    }

    /// Whether it names a Gateway API HTTPRoute (which a Gateway API router serves).
    pub fn is_http_route(&self) -> bool {
        self.kind() == HTTP_ROUTE_KIND && self.group() == GATEWAY_API_GROUP
    }
}

crate::string_enum! {
    /// What `baseline` and `candidate` name.
    TargetKind {
        /// Two Deployments behind one Service (the default).
        Deployment => "Deployment",
        /// Two Services.
        Service => "Service",
    }
}

crate::string_enum! {
    /// How the candidate's share of traffic is decided.
    Strategy {
        /// Step up while all criteria pass (the default).
        CheckAndIncrement => "check_and_increment",
        /// Step up every iteration (no criteria).
        IncrementWithoutCheck => "increment_without_check",
        /// Epsilon-greedy.
        EpsilonGreedy => "epsilon_greedy",
        /// Posterior Bayesian routing.
        PosteriorBayesianRouting => "posterior_bayesian_routing",
        /// Optimistic Bayesian routing.
        OptimisticBayesianRouting => "optimistic_bayesian_routing",
    }
}

crate::string_enum! {
    /// Where traffic goes after a successful experiment.
    OnSuccess {
        /// All traffic to the candidate (the default).
        Candidate => "candidate",
        /// All traffic back to the baseline.
        Baseline => "baseline",
        /// Leave the split as it ended.
        Both => "both",
    }
}

crate::string_enum! {
    /// How a success criterion compares.
    ToleranceType {
        /// Candidate value at most `tolerance`.
        Threshold => "threshold",
        /// Candidate value at most `(1 + tolerance)` times the baseline's.
        Delta => "delta",
    }
}

crate::string_enum! {
    /// What to do with the loser when done.
    Cleanup {
        /// Delete the losing Deployment (or Service).
        Delete => "delete",
    }
}

/// `spec.targetService`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetService {
    /// `Deployment` (default) or `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TargetKind>,
    /// `apps/v1`/`v1`/empty for Deployment, `v1`/empty for Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The Kubernetes Service being rolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the targets live; the experiment's namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// If set, every route destination gets `port.number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// Extra hosts reached through Istio Gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
}

impl TargetService {
    /// The target kind, defaulted.
    pub fn kind(&self) -> TargetKind {
        self.kind.clone().unwrap_or(TargetKind::Deployment)
    }

    /// The baseline's name, empty if unset.
    pub fn baseline(&self) -> &str {
        self.baseline.as_deref().unwrap_or("")
    }

    /// The candidate's name, empty if unset.
    pub fn candidate(&self) -> &str {
        self.candidate.as_deref().unwrap_or("")
    }
}

/// `spec.targetService.hosts[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// The host name users call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Istio Gateway the host comes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// `spec.trafficControl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrafficControl {
    /// The analytics strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Time between iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Iterations before completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<i64>,
    /// Percentage points added per successful iteration.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_number"
    )]
    pub traffic_step_size: Option<f64>,
    /// Cap on the candidate's share while progressing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_number"
    )]
    pub max_traffic_percentage: Option<f64>,
    /// Where traffic goes on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<OnSuccess>,
    /// Posterior probability required by the Bayesian strategies.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_number"
    )]
    pub confidence: Option<f64>,
}

/// `spec.analysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Remote analytics endpoint (used with remote analytics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics_service: Option<String>,
    /// Base of `status.grafanaURL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana_endpoint: Option<String>,
    /// The criteria the candidate must meet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_criteria: Vec<SuccessCriterion>,
    /// Reward metric for A/B with the Bayesian strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
}

/// `spec.analysis.successCriteria[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SuccessCriterion {
    /// A metric of the metrics configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// `threshold` or `delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_type: Option<ToleranceType>,
    /// The threshold, or the relative delta.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_number"
    )]
    pub tolerance: Option<f64>,
    /// Minimum number of requests before the criterion can be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<i64>,
    /// Abort the experiment as soon as this criterion fails on a sufficient sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_on_failure: Option<bool>,
    /// Metric range (Bayesian strategies).
    #[serde(default, rename = "min_max", skip_serializing_if = "Option::is_none")]
    pub min_max: Option<MinMax>,
}

/// `min_max` of a criterion or the reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MinMax {
    /// Lowest value the metric can take.
    #[serde(serialize_with = "ser_number_req")]
    pub min: f64,
    /// Highest value the metric can take.
    #[serde(serialize_with = "ser_number_req")]
    pub max: f64,
}

/// `spec.analysis.reward`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Reward {
    /// The metric to maximise.
    #[serde(default)]
    pub metric_name: String,
    /// Its range.
    #[serde(default, rename = "min_max", skip_serializing_if = "Option::is_none")]
    pub min_max: Option<MinMax>,
}

impl ExperimentSpec {
    /// A copy with every defaulted field written out.
    pub fn with_defaults(&self) -> ExperimentSpec {
        let mut s = self.clone();
        let ts = &mut s.target_service;
        ts.kind.get_or_insert(TargetKind::Deployment);
        let tc = &mut s.traffic_control;
        tc.strategy.get_or_insert(self.strategy());
        tc.interval
            .get_or_insert_with(|| GoDuration::new(DEFAULT_INTERVAL));
        tc.max_iterations.get_or_insert(DEFAULT_MAX_ITERATIONS);
        tc.traffic_step_size.get_or_insert(DEFAULT_STEP_SIZE);
        tc.max_traffic_percentage
            .get_or_insert(DEFAULT_MAX_TRAFFIC_PERCENTAGE);
        tc.on_success.get_or_insert(OnSuccess::Candidate);
        tc.confidence.get_or_insert(DEFAULT_CONFIDENCE);
        let a = &mut s.analysis;
        a.analytics_service
            .get_or_insert_with(|| DEFAULT_ANALYTICS_SERVICE.to_string());
        a.grafana_endpoint
            .get_or_insert_with(|| DEFAULT_GRAFANA_ENDPOINT.to_string());
        for c in &mut a.success_criteria {
            c.sample_size.get_or_insert(DEFAULT_SAMPLE_SIZE);
            c.stop_on_failure.get_or_insert(false);
        }
        s
    }

    /// The effective strategy: no success criteria forces `increment_without_check`.
    pub fn strategy(&self) -> Strategy {
        if self.analysis.success_criteria.is_empty() {
            return Strategy::IncrementWithoutCheck;
        }
        self.traffic_control
            .strategy
            .clone()
            .unwrap_or(Strategy::CheckAndIncrement)
    }

    /// The Grafana base URL, defaulted.
    pub fn grafana_endpoint(&self) -> &str {
        self.analysis
            .grafana_endpoint
            .as_deref()
            .unwrap_or(DEFAULT_GRAFANA_ENDPOINT)
    }

    /// The remote analytics URL, defaulted.
    pub fn analytics_service(&self) -> &str {
        self.analysis
            .analytics_service
            .as_deref()
            .unwrap_or(DEFAULT_ANALYTICS_SERVICE)
    }
}
