//! A what-if run of one experiment (`iter8 simulate`): a cluster holding the experiment's
//! service and both versions, traffic at the profile's rate, the experiment from start to
//! completion, and a per-iteration timeline of every criterion's readings and verdict.

use std::time::Duration;

use iter8_core::analytics::conclusions;
use iter8_core::model::{CriterionAssessment, Reading};
use iter8_core::plan::Plan;
use iter8_core::{Experiment, MetricsConfig, Phase, TargetKind, TrafficSplit};

use crate::clock::SimTime;
use crate::cluster::{Deployment, Gateway, Labels, Object, Service};
use crate::metrics;
use crate::plot::{PlotData, VersionLine};
use crate::profile::Profile;
use crate::scenario::Sim;
use crate::traffic::{BUCKET_MS, Target, Totals};

/// Why a what-if cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WhatIfError {
    /// The experiment is not valid (validation's problems, with field paths).
    #[error("the experiment is not valid: {0}")]
    InvalidExperiment(String),
    /// The profile has no entry for a version of the experiment.
    #[error(
        "the profile has no version `{version}` (the experiment's {role}); it has: {available}"
    )]
    MissingVersion {
        /// The missing version.
        version: String,
        /// `baseline` or `candidate`.
        role: &'static str,
        /// The versions the profile has.
        available: String,
    },
    /// A criterion's metric cannot be simulated.
    #[error("{0}")]
    UnsupportedMetric(String),
}

/// How long the traffic runs before the experiment is created (the baseline serving alone).
pub const WARM_UP: Duration = Duration::from_secs(30);

/// One line of the timeline: the state after a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// Time since the experiment started.
    pub since_start: SimTime,
    /// The iteration begun (the last one, once completed).
    pub iteration: u32,
    /// The split after the decision.
    pub split: TrafficSplit,
    /// The phase after the decision.
    pub phase: Option<Phase>,
    /// The status message after the decision.
    pub message: String,
    /// The verdict on each criterion.
    pub criteria: Vec<CriterionAssessment>,
}

/// The outcome of a what-if run.
#[derive(Debug, Clone)]
pub struct WhatIfReport {
    /// The experiment as it ended.
    pub experiment: Experiment,
    /// Whether it completed within the time limit.
    pub completed: bool,
    /// The request rate used.
    pub rate: f64,
    /// The seed used.
    pub seed: u64,
    /// One entry per decision that began an iteration, paused or completed.
    pub timeline: Vec<TimelineEntry>,
    /// Request rate, mean latency and split over the experiment.
    pub plot: PlotData,
}

impl WhatIfReport {
    /// Whether the experiment completed and succeeded.
    pub fn succeeded(&self) -> bool {
        self.completed
            && self
                .experiment
                .status
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("ExperimentSucceeded"))
    }

    /// The timeline and the closing lines, as `iter8 simulate` prints them (without the table).
    pub fn render(&self) -> String {
        let exp = &self.experiment;
        let spec = exp.spec.with_defaults();
        let tc = &spec.traffic_control;
        let mut out = format!(
            "Simulating {} in {}: {} -> {}\n{} requests/s, interval {}, {} iterations, step {}%, at most {}% to the candidate, seed {}\n\n",
            exp.name(),
            exp.target_namespace(),
            exp.spec.target_service.baseline(),
            exp.spec.target_service.candidate(),
            number(self.rate),
            tc.interval
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            tc.max_iterations.unwrap_or_default(),
            number(tc.traffic_step_size.unwrap_or_default()),
            number(tc.max_traffic_percentage.unwrap_or_default()),
            self.seed,
        );
        let mut rows: Vec<Vec<String>> = vec![
            [
                "TIME",
                "ITERATION",
                "SPLIT",
                "CRITERION",
                "BASELINE",
                "CANDIDATE",
                "TOLERANCE",
                "VERDICT",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for e in &self.timeline {
            let iteration = match e.phase {
                Some(Phase::Completed) => "completed".to_string(),
                Some(Phase::Pause) => "paused".to_string(),
                _ => e.iteration.to_string(),
            };
            let head = [
                e.since_start.to_string(),
                iteration,
                format!("{}/{}", e.split.baseline, e.split.candidate),
            ];
            if e.criteria.is_empty() {
                let mut row = head.to_vec();
                row.extend(["-", "", "", "", ""].map(String::from));
                rows.push(row);
            }
            for (i, c) in e.criteria.iter().enumerate() {
                let mut row = if i == 0 {
                    head.to_vec()
                } else {
                    vec![String::new(); 3]
                };
                row.push(c.metric_name.clone());
                row.push(reading(c.baseline.as_ref()));
                row.push(reading(c.candidate.as_ref()));
                row.push(tolerance(c));
                row.push(verdict(c));
                rows.push(row);
            }
        }
        out.push_str(&align(&rows));
        out.push('\n');
        let message = exp.status.message.clone().unwrap_or_default();
        if self.completed {
            let took = exp
                .status
                .start_timestamp
                .zip(exp.status.end_timestamp)
                .map(|(s, e)| SimTime::from_datetime(e).since(SimTime::from_datetime(s)))
                .unwrap_or_default();
            out.push_str(&format!(
                "{message} after {} (virtual time)\n",
                SimTime(took.as_millis() as i64)
            ));
        } else {
            out.push_str(&format!("did not complete: {message}\n"));
        }
        out
    }
}

fn number(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

fn reading(r: Option<&Reading>) -> String {
    match r {
        None => "-".into(),
        Some(r) => format!(
            "{} (n={})",
            r.value.map_or_else(|| "no value".to_string(), number),
            number(r.sample_size)
        ),
    }
}

fn tolerance(c: &CriterionAssessment) -> String {
    let t = c.tolerance.unwrap_or_default();
    match c.tolerance_type.as_deref() {
        Some("delta") => format!("<= {} x baseline", number(1.0 + t)),
        _ => format!("<= {}", number(t)),
    }
}

fn verdict(c: &CriterionAssessment) -> String {
    let insufficient = c
        .conclusions
        .iter()
        .any(|s| s == conclusions::INSUFFICIENT_SAMPLE);
    match (c.success_criterion_met, insufficient, c.abort_experiment) {
        (true, _, _) => "met".into(),
        (false, true, _) => format!(
            "insufficient sample (< {})",
            c.sample_size.unwrap_or_default()
        ),
        (false, false, true) => "not met: abort".into(),
        (false, false, false) => "not met".into(),
    }
}

/// Lays rows out in columns (widest cell plus three spaces, like kubectl), two spaces in.
fn align(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] + 3 - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Checks the inputs: a valid experiment, a profile for both versions, metrics the simulator
/// can compute. Returns the experiment's plan.
pub fn check(
    experiment: &Experiment,
    profile: &Profile,
    metrics_config: &MetricsConfig,
) -> Result<Plan, WhatIfError> {
    let plan = iter8_core::validation::plan(experiment, metrics_config).map_err(|problems| {
        WhatIfError::InvalidExperiment(
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    for (version, role) in [(&plan.baseline, "baseline"), (&plan.candidate, "candidate")] {
        if profile.version(version).is_none() {
            let available = profile
                .versions
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(WhatIfError::MissingVersion {
                version: version.clone(),
                role,
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available
                },
            });
        }
    }
    let mut traffic = crate::traffic::Traffic::new(0);
    traffic.add_profiles(profile);
    for c in &plan.criteria {
        if !metrics::supported(&traffic, &c.metric) {
            return Err(WhatIfError::UnsupportedMetric(metrics::unsupported(
                &c.metric,
            )));
        }
    }
    Ok(plan)
}

/// Runs the experiment against the profile.
pub fn run(
    experiment: &Experiment,
    profile: &Profile,
    metrics_config: &MetricsConfig,
    seed: u64,
) -> Result<WhatIfReport, WhatIfError> {
    let plan = check(experiment, profile, metrics_config)?;
    let ns = plan.namespace.clone();
    let ts = &experiment.spec.target_service;
    let mut sim = Sim::with_options(seed, false);
    sim.set_metrics_config(metrics_config.clone());
    sim.add_profiles(profile);
    let service = ts.name.clone().filter(|n| !n.is_empty());
    // The candidate is deployed after the experiment is created, as in the tutorial: before
    // that, the Service would spread requests over both versions' pods.
    let version_objects = |version: &String| -> Vec<Object> {
        match plan.kind {
            TargetKind::Service => vec![
                Object::Service(Service {
                    namespace: ns.clone(),
                    name: version.clone(),
                    selector: labels(&[("app", version)]),
                }),
                Object::Deployment(Deployment {
                    namespace: ns.clone(),
                    name: version.clone(),
                    pod_labels: labels(&[("app", version)]),
                }),
            ],
            _ => {
                let app = service.clone().unwrap_or_else(|| plan.baseline.clone());
                vec![Object::Deployment(Deployment {
                    namespace: ns.clone(),
                    name: version.clone(),
                    pod_labels: labels(&[("app", &app), ("version", version)]),
                })]
            }
        }
    };
    for object in version_objects(&plan.baseline) {
        sim.apply(object);
    }
    if let Some(name) = &service {
        let selector = match plan.kind {
            TargetKind::Service => labels(&[("app", &plan.baseline)]),
            _ => labels(&[("app", name)]),
        };
        sim.apply(Object::Service(Service {
            namespace: ns.clone(),
            name: name.clone(),
            selector,
        }));
    }
    for h in &ts.hosts {
        if let (Some(host), Some(gateway)) = (&h.name, &h.gateway) {
            let (gns, gname) = gateway.split_once('/').unwrap_or((&ns, gateway));
            sim.apply(Object::Gateway(Gateway {
                namespace: gns.to_string(),
                name: gname.to_string(),
                hosts: vec![host.clone()],
            }));
        }
    }
    let target = match (&service, ts.hosts.iter().find_map(|h| h.name.clone())) {
        (Some(name), _) if plan.kind != TargetKind::Service || ts.hosts.is_empty() => {
            Target::Service {
                namespace: ns.clone(),
                name: name.clone(),
            }
        }
        (_, Some(host)) => Target::Host(host),
        _ => Target::Service {
            namespace: ns.clone(),
            name: plan.baseline.clone(),
        },
    };
    let rate = profile.rate();
    sim.add_source(target, rate);
    sim.run_for(WARM_UP, &mut |_| {});

    let mut exp = experiment.clone();
    exp.metadata.namespace.get_or_insert_with(|| ns.clone());
    exp.status = Default::default();
    let id = sim.apply_experiment(exp);
    for object in version_objects(&plan.candidate) {
        sim.apply(object);
    }
    let created = sim.now();
    let limit = created.after(
        plan.interval
            .saturating_mul(plan.max_iterations.saturating_add(2))
            .saturating_add(Duration::from_secs(600)),
    );
    let mut timeline = Vec::new();
    let mut start = None::<SimTime>;
    let completed = sim.run_until_completed(id, limit, &mut |r| {
        let before = &r.before.status;
        let after = &r.decision.status;
        let started = after.start_timestamp.map(SimTime::from_datetime);
        start = start.or(started);
        let changed = after.current_iteration != before.current_iteration
            || after.phase != before.phase
            || after.message != before.message;
        if changed {
            timeline.push(TimelineEntry {
                since_start: SimTime(r.time.millis() - start.unwrap_or(created).millis()),
                iteration: after.current_iteration,
                split: after.split(),
                phase: after.phase.clone(),
                message: after.message.clone().unwrap_or_default(),
                criteria: after
                    .assessment
                    .as_ref()
                    .map(|a| a.success_criteria.clone())
                    .unwrap_or_default(),
            });
        }
    });
    let end = sim.now();
    let experiment = sim.get(id).unwrap_or_else(|| experiment.clone());
    let from = start.unwrap_or(created);
    let plot = plot_data(experiment.name(), &sim, &plan, &timeline, from, end);
    Ok(WhatIfReport {
        experiment,
        completed,
        rate,
        seed,
        timeline,
        plot,
    })
}

/// Request rate and mean latency per version (over 10 s windows every 5 s) and the split.
fn plot_data(
    name: &str,
    sim: &Sim,
    plan: &Plan,
    timeline: &[TimelineEntry],
    from: SimTime,
    end: SimTime,
) -> PlotData {
    const STEP_MS: i64 = 5 * BUCKET_MS;
    const WINDOW_MS: i64 = 10 * BUCKET_MS;
    let world = sim.world().lock();
    let mut versions = Vec::new();
    for (name, tags) in [
        (&plan.baseline, plan.baseline_tags()),
        (&plan.candidate, plan.candidate_tags()),
    ] {
        let series = world.traffic.matching(&tags);
        let mut line = VersionLine {
            name: name.clone(),
            rate: Vec::new(),
            latency: Vec::new(),
        };
        let mut t = from.millis() + STEP_MS;
        while t <= end.millis() + STEP_MS {
            let (a, b) = (SimTime(t - WINDOW_MS), SimTime(t));
            let mut total = Totals::default();
            for s in &series {
                let w = s.totals(a, b);
                total.requests += w.requests;
                total.latency_sum_ms += w.latency_sum_ms;
            }
            let x = (t - from.millis()) as f64 / 1000.0;
            line.rate
                .push((x, total.requests as f64 * 1000.0 / WINDOW_MS as f64));
            if total.requests > 0 {
                line.latency
                    .push((x, total.latency_sum_ms / total.requests as f64));
            }
            t += STEP_MS;
        }
        versions.push(line);
    }
    let mut split = Vec::new();
    let mut last = 0.0;
    split.push((0.0, 0.0));
    for e in timeline {
        let x = e.since_start.secs_f64();
        let c = f64::from(e.split.candidate);
        split.push((x, last));
        split.push((x, c));
        last = c;
    }
    split.push(((end.millis() - from.millis()) as f64 / 1000.0 + 5.0, last));
    PlotData {
        title: format!("{}: {} -> {}", name, plan.baseline, plan.candidate),
        versions,
        split,
    }
}
