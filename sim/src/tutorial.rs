//! The iter8 v0.2 canary tutorial, replayed in a simulated cluster: the five parts in order,
//! with the tutorial's manifests (examples/bookinfo) and example profiles (examples/profiles),
//! printing `kubectl get experiments` wherever the tutorial shows it.

use std::collections::HashMap;
use std::time::Duration;

use iter8_core::{Experiment, Phase, TrafficSplit, table};

use crate::clock::SimTime;
use crate::profile::Profile;
use crate::scenario::{Reconciled, Sim, SimError};
use crate::store::ExperimentId;
use crate::traffic::Target;

/// The tutorial's namespace.
pub const NAMESPACE: &str = "bookinfo-iter8";

/// The manifests the tutorial applies: (file name, text).
pub mod manifests {
    macro_rules! bookinfo {
        ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {$(
            $(#[$doc])*
            pub const $name: (&str, &str) =
                ($file, include_str!(concat!("../../examples/bookinfo/", $file)));
        )*};
    }
    bookinfo! {
        /// The Bookinfo services and their first versions.
        BOOKINFO = "bookinfo-tutorial.yaml";
        /// The gateway and VirtualService of `bookinfo.sample.dev`.
        BOOKINFO_GATEWAY = "bookinfo-gateway.yaml";
        /// Part 1's experiment.
        CANARY_V2_V3 = "canary_reviews-v2_to_reviews-v3.yaml";
        /// Part 1's candidate.
        REVIEWS_V3 = "reviews-v3.yaml";
        /// Part 2's experiment.
        CANARY_V3_V4 = "canary_reviews-v3_to_reviews-v4.yaml";
        /// Part 2's candidate.
        REVIEWS_V4 = "reviews-v4.yaml";
        /// Part 3's experiment.
        CANARY_V3_V5 = "canary_reviews-v3_to_reviews-v5.yaml";
        /// Part 3's candidate.
        REVIEWS_V5 = "reviews-v5.yaml";
        /// Part 4's metrics (telemetry v1).
        METRICS_EXTENDED_V1 = "iter8_metrics_extended.yaml";
        /// Part 4's metrics (telemetry v2).
        METRICS_EXTENDED_V2 = "iter8_metrics_extended_telemetry-v2.yaml";
        /// Part 4's experiment.
        CANARY_V3_V6 = "canary_reviews-v3_to_reviews-v6.yaml";
        /// Part 4's candidate.
        REVIEWS_V6 = "reviews-v6.yaml";
        /// Part 5's gateway.
        PRODUCTPAGE_GATEWAY = "productpage-gateway.yaml";
        /// Part 5's experiment.
        CANARY_PRODUCTPAGE = "canary_productpage-v1_to_productpage-v2.yaml";
        /// Part 5's candidate.
        PRODUCTPAGE_V2 = "productpage-v2.yaml";
    }
}

/// The example profiles of every version the tutorial runs: (file name, text).
pub const PROFILES: [(&str, &str); 7] = [
    (
        "reviews-v2.yaml",
        include_str!("../../examples/profiles/reviews-v2.yaml"),
    ),
    (
        "reviews-v3.yaml",
        include_str!("../../examples/profiles/reviews-v3.yaml"),
    ),
    (
        "reviews-v4.yaml",
        include_str!("../../examples/profiles/reviews-v4.yaml"),
    ),
    (
        "reviews-v5.yaml",
        include_str!("../../examples/profiles/reviews-v5.yaml"),
    ),
    (
        "reviews-v6.yaml",
        include_str!("../../examples/profiles/reviews-v6.yaml"),
    ),
    (
        "productpage-v1.yaml",
        include_str!("../../examples/profiles/productpage-v1.yaml"),
    ),
    (
        "productpage-v2.yaml",
        include_str!("../../examples/profiles/productpage-v2.yaml"),
    ),
];

/// Which Istio telemetry the cluster has (which metrics ConfigMaps apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Telemetry {
    /// Mixer (`istio-mesh`, seconds).
    V1,
    /// Envoy stats (`envoy-stats`, milliseconds): Istio 1.5 and later.
    #[default]
    V2,
}

/// How to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The traffic's seed.
    pub seed: u64,
    /// The telemetry.
    pub telemetry: Telemetry,
}

/// The replay could not run (a broken embedded file: a bug).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TutorialError {
    /// A manifest could not be applied.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A profile could not be read.
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    /// An experiment the tutorial expects is missing.
    #[error("experiment {0} is missing")]
    Missing(String),
    /// An experiment did not complete in time.
    #[error("experiment {0} did not complete")]
    Stalled(String),
}

/// How one experiment of the tutorial ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The experiment's name.
    pub name: String,
    /// Its phase.
    pub phase: Option<Phase>,
    /// Its status message.
    pub message: String,
    /// Its final split.
    pub split: TrafficSplit,
    /// Iterations begun.
    pub iterations: u32,
    /// `maxIterations`.
    pub max_iterations: u32,
    /// From start to end.
    pub duration: Duration,
    /// Every split it applied, in order.
    pub splits: Vec<TrafficSplit>,
}

/// What the replay printed and how each experiment ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Everything printed.
    pub text: String,
    /// Each `kubectl get` table, in order (header line included).
    pub tables: Vec<String>,
    /// Each experiment's outcome, in tutorial order.
    pub outcomes: Vec<Outcome>,
}

struct Replay {
    sim: Sim,
    text: String,
    tables: Vec<String>,
    outcomes: Vec<Outcome>,
    trails: HashMap<ExperimentId, Vec<TrafficSplit>>,
}

/// Keeps every split an experiment applies.
fn record(trails: &mut HashMap<ExperimentId, Vec<TrafficSplit>>, r: &Reconciled<'_>) {
    let trail = trails.entry(r.id).or_default();
    if let Some(s) = r.decision.status.traffic_split_percentage
        && r.decision.status.start_timestamp.is_some()
        && trail.last() != Some(&s)
    {
        trail.push(s);
    }
}

impl Replay {
    fn say(&mut self, line: &str) {
        self.text.push_str(&format!("# {line}\n"));
    }

    fn apply(&mut self, (file, text): (&str, &str), namespace: &str) -> Result<(), TutorialError> {
        self.text
            .push_str(&format!("$ kubectl apply -n {namespace} -f {file}\n"));
        self.sim.apply_yaml(text, namespace, file)?;
        Ok(())
    }

    fn print_table(&mut self, command: &str, experiments: &[Experiment]) {
        let table = table::render(experiments);
        self.text.push_str(&format!("$ {command}\n{table}\n"));
        self.tables.push(table);
    }

    fn get_all(&mut self) {
        let all = self.sim.experiments();
        self.print_table(&format!("kubectl get experiments -n {NAMESPACE}"), &all);
    }

    fn get_one(&mut self, name: &str) -> Result<(), TutorialError> {
        let exp = self
            .sim
            .experiment(NAMESPACE, name)
            .ok_or_else(|| TutorialError::Missing(name.to_string()))?;
        self.print_table(
            &format!("kubectl get experiment {name} -n {NAMESPACE}"),
            &[exp],
        );
        Ok(())
    }

    fn wait(&mut self, secs: u64) {
        let Replay { sim, trails, .. } = self;
        sim.run_for(Duration::from_secs(secs), &mut |r| record(trails, r));
    }

    /// Runs until the experiment completes; says how it went.
    fn until_done(&mut self, name: &str) -> Result<(), TutorialError> {
        let id = self
            .sim
            .world()
            .lock()
            .store
            .id(NAMESPACE, name)
            .ok_or_else(|| TutorialError::Missing(name.to_string()))?;
        let limit = self.sim.now().after(Duration::from_secs(3600));
        let Replay { sim, trails, .. } = self;
        let done = sim.run_until_completed(id, limit, &mut |r| record(trails, r));
        let exp = self
            .sim
            .get(id)
            .ok_or_else(|| TutorialError::Missing(name.to_string()))?;
        if !done {
            return Err(TutorialError::Stalled(name.to_string()));
        }
        let splits = self.trails.get(&id).cloned().unwrap_or_default();
        let trail = splits
            .iter()
            .map(|s| format!("{}/{}", s.baseline, s.candidate))
            .collect::<Vec<_>>()
            .join(" -> ");
        let status = &exp.status;
        let duration = status
            .start_timestamp
            .zip(status.end_timestamp)
            .map(|(s, e)| SimTime::from_datetime(e).since(SimTime::from_datetime(s)))
            .unwrap_or_default();
        self.say(&format!(
            "{name} completed {} (virtual time) after it started, at iteration {}: {} (split {trail})",
            SimTime(duration.as_millis() as i64),
            status.current_iteration,
            status.message.clone().unwrap_or_default(),
        ));
        let plan = exp.spec.with_defaults();
        self.outcomes.retain(|o| o.name != name);
        self.outcomes.push(Outcome {
            name: name.to_string(),
            phase: status.phase.clone(),
            message: status.message.clone().unwrap_or_default(),
            split: status.split(),
            iterations: status.current_iteration,
            max_iterations: plan
                .traffic_control
                .max_iterations
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or_default(),
            duration,
            splits,
        });
        Ok(())
    }
}

/// Every table printed after a `$ kubectl get experiment...` line of a transcript (the seed
/// tutorial's, or `iter8 tutorial`'s output), each row's cells split on runs of two or more
/// blanks — the comparison the golden tests make, since one of the seed's tables was edited by
/// hand and lost kubectl's padding.
pub fn transcript_tables(text: &str) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("$ kubectl get experiment") {
            continue;
        }
        let mut table = Vec::new();
        for row in lines.by_ref() {
            if row.trim().is_empty() || row.starts_with("```") {
                break;
            }
            table.push(
                row.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
        out.push(table);
    }
    out
}

/// Replays the tutorial.
pub fn run(options: &Options) -> Result<Transcript, TutorialError> {
    use manifests::*;
    let mut sim = Sim::new(options.seed);
    let (stock, extended) = match options.telemetry {
        Telemetry::V1 => (
            iter8_core::MetricsConfig::stock_telemetry_v1(),
            METRICS_EXTENDED_V1,
        ),
        Telemetry::V2 => (
            iter8_core::MetricsConfig::stock_telemetry_v2(),
            METRICS_EXTENDED_V2,
        ),
    };
    sim.set_metrics_config(stock);
    let mut profile = Profile::default();
    for (file, text) in PROFILES {
        profile.merge(Profile::from_yaml(text, file)?);
    }
    let reviews_rate = profile.rate();
    sim.add_profiles(&profile);
    let mut r = Replay {
        sim,
        text: String::new(),
        tables: Vec::new(),
        outcomes: Vec::new(),
        trails: HashMap::new(),
    };

    r.say("Part 1: Successful canary release: reviews-v2 to reviews-v3");
    r.apply(BOOKINFO, NAMESPACE)?;
    r.apply(BOOKINFO_GATEWAY, NAMESPACE)?;
    r.sim.add_source(
        Target::Service {
            namespace: NAMESPACE.into(),
            name: "reviews".into(),
        },
        reviews_rate,
    );
    r.say(&format!(
        "load: {reviews_rate} requests/s to reviews, in virtual time"
    ));
    r.wait(60);
    r.apply(CANARY_V2_V3, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.wait(10);
    r.apply(REVIEWS_V3, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.until_done("reviews-v3-rollout")?;

    r.say("Part 2: High-latency canary release: reviews-v3 to reviews-v4");
    r.wait(30);
    r.get_one("reviews-v3-rollout")?;
    r.apply(CANARY_V3_V4, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.wait(10);
    r.apply(REVIEWS_V4, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.until_done("reviews-v4-rollout")?;
    r.get_one("reviews-v4-rollout")?;

    r.say("Part 3: Error-producing canary release: reviews-v3 to reviews-v5");
    r.wait(30);
    r.get_all();
    r.apply(CANARY_V3_V5, NAMESPACE)?;
    r.wait(10);
    r.apply(REVIEWS_V5, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.until_done("reviews-v5-rollout")?;
    r.get_all();

    r.say("Part 4: Using a custom metric");
    r.wait(30);
    r.get_all();
    r.apply(extended, "iter8")?;
    r.apply(CANARY_V3_V6, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.wait(10);
    r.apply(REVIEWS_V6, NAMESPACE)?;
    r.wait(1);
    r.get_all();
    r.until_done("reviews-v6-rollout")?;
    r.get_all();

    r.say("Part 5: User-facing canary release: productpage-v1 to productpage-v2");
    r.apply(PRODUCTPAGE_GATEWAY, NAMESPACE)?;
    let host = "productpage.deployment.com";
    let rate = profile.rate.unwrap_or(crate::profile::DEFAULT_RATE);
    r.sim.add_source(Target::Host(host.into()), rate);
    r.say(&format!(
        "load: {rate} requests/s to {host} through the ingress gateway (no route until the experiment starts)"
    ));
    r.wait(30);
    r.apply(CANARY_PRODUCTPAGE, NAMESPACE)?;
    r.wait(10);
    r.apply(PRODUCTPAGE_V2, NAMESPACE)?;
    r.wait(1);
    r.get_one("productpage-v2-rollout")?;
    r.until_done("productpage-v2-rollout")?;

    Ok(Transcript {
        text: r.text,
        tables: r.tables,
        outcomes: r.outcomes,
    })
}
