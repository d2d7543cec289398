//! `iter8 analyze`: a retrospective analysis of any window. Measures the experiment's success
//! criteria in Prometheus, prints each version's value and sample size, the tolerance and the
//! verdict, and the decision the engine would take (new split, hold, or abort).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use iter8_core::analytics::{AnalysisOutcome, AnalysisRequest, AnalysisState, analyze};
use iter8_core::engine::{self, Step};
use iter8_core::measurement::{Measurement, Window};
use iter8_core::model::{Experiment, Reading};
use iter8_core::observation::{Observations, RoutingObservation, Targets};
use iter8_core::plan::Plan;
use iter8_core::validation;
use iter8_core::{MetricReadings, MetricsConfig};
use iter8_prometheus::render::interval_and_offset;
use iter8_prometheus::window::{self, format};
use iter8_prometheus::{Measured, PrometheusSource};
use iter8_rand::ChaCha;

use super::prometheus::PrometheusArgs;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A report for people.
    Text,
    /// One JSON object, for scripts.
    Json,
}

/// Flags of `iter8 analyze`.
#[derive(clap::Args)]
pub struct Args {
    /// The Experiment manifest (e.g. `kubectl get experiment NAME -o yaml`; its status, if any,
    /// supplies the window start, the current split and the last analysis state).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Which Experiment of the file (required when it holds several).
    #[arg(long)]
    pub name: Option<String>,
    /// The metrics ConfigMap (default: the stock Istio telemetry-v2 configuration).
    #[arg(long, value_name = "CONFIGMAP.yaml")]
    pub metrics: Option<PathBuf>,
    /// Window start: RFC 3339, Unix seconds or `now` (default: status.startTimestamp).
    #[arg(long, conflicts_with = "last")]
    pub from: Option<String>,
    /// Window end: RFC 3339, Unix seconds or `now` (default: status.endTimestamp, else now).
    #[arg(long)]
    pub to: Option<String>,
    /// Window length ending at --to (or now), as a Go duration: 30m, 1h, 90s.
    #[arg(long, value_name = "DURATION")]
    pub last: Option<String>,
    /// Analyse as the experiment's first iteration (ignore the status' analysis state).
    #[arg(long)]
    pub first_iteration: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// How to reach Prometheus.
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

fn read_experiment(path: &Path, name: Option<&str>) -> anyhow::Result<Experiment> {
    let mut found: Vec<Experiment> = super::input::read_experiments(path)?
        .into_iter()
        .map(|doc| doc.experiment)
        .filter(|e| name.is_none_or(|n| e.name() == n))
        .collect();
    match (found.len(), name) {
        (1, _) => Ok(found.remove(0)),
        (0, Some(n)) => bail!("{}: no Experiment named `{n}`", path.display()),
        (0, None) => bail!("{}: no Experiment found", path.display()),
        (_, _) => bail!(
            "{}: {} Experiments; choose one with --name ({})",
            path.display(),
            found.len(),
            found
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn choose_window(args: &Args, exp: &Experiment, now: window::Time) -> anyhow::Result<Window> {
    let to = match &args.to {
        Some(t) => window::parse_time("--to", t, now)?,
        None => exp.status.end_timestamp.unwrap_or(now),
    };
    if let Some(last) = &args.last {
        return Ok(window::last(last, to)?);
    }
    let from = match &args.from {
        Some(f) => window::parse_time("--from", f, now)?,
        None => exp.status.start_timestamp.with_context(|| {
            "no window: give --from [--to] or --last (the manifest has no status.startTimestamp)"
        })?,
    };
    Ok(window::between(from, to)?)
}

/// The state the engine would continue from: the status' analysis state, else the current
/// split with no remembered readings (so the readings count as new data).
fn last_state(args: &Args, exp: &Experiment) -> Option<AnalysisState> {
    if args.first_iteration {
        return None;
    }
    match &exp.status.analysis_state {
        Some(s) if s.as_json().as_object().is_some_and(|m| !m.is_empty()) => Some(s.clone()),
        _ => {
            let split = exp.status.split();
            Some(AnalysisState::from(serde_json::json!({
                "baseline": {"traffic_percentage": f64::from(split.baseline), "success_criterion_information": []},
                "candidate": {"traffic_percentage": f64::from(split.candidate), "success_criterion_information": []},
            })))
        }
    }
}

/// What the engine would do with the outcome at the experiment's next iteration.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    /// `new_split`, `hold`, `abort` or `complete`.
    action: &'static str,
    baseline: u32,
    candidate: u32,
    current_baseline: u32,
    current_candidate: u32,
    /// The status message the engine would write.
    message: String,
}

impl Decision {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "action": self.action,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "current": {"baseline": self.current_baseline, "candidate": self.current_candidate},
            "message": self.message,
        })
    }
}

/// Asks the engine: the experiment as the manifest has it, its iteration due now, targets
/// present and routing serving the status' split, analysed to `outcome`.
fn decide(
    exp: &Experiment,
    last_state: Option<AnalysisState>,
    first_iteration: bool,
    outcome: &AnalysisOutcome,
    ctx: &engine::Context,
) -> Decision {
    let current = exp.status.split();
    let mut due = exp.clone();
    due.status.last_increment_time = None;
    due.status.analysis_state = last_state;
    if first_iteration {
        due.status.current_iteration = 0;
    }
    let obs = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(current),
            held_by: None,
            ..Default::default()
        },
    };
    let decided = match engine::reconcile(&due, &obs, ctx) {
        Step::Analyze(pending) => pending.resume(Ok(outcome.clone())),
        // Nothing to analyse (completed, paused): the engine's decision as it stands.
        Step::Decided(d) => d,
    };
    let status = &decided.status;
    let split = status.split();
    let action = if status.is_completed() {
        if outcome.assessment.abort_experiment {
            "abort"
        } else {
            "complete"
        }
    } else if split != current {
        "new_split"
    } else {
        "hold"
    };
    Decision {
        action,
        baseline: split.baseline,
        candidate: split.candidate,
        current_baseline: current.baseline,
        current_candidate: current.candidate,
        message: status.message.clone().unwrap_or_default(),
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A measurement for people: the number the analytics used, and why when it was not measured.
fn describe(raw: &Measurement, used: Option<f64>) -> String {
    match raw {
        Measurement::Value(_) | Measurement::PosInf => {
            used.map(number).unwrap_or_else(|| "none".into())
        }
        Measurement::NoData => match used {
            Some(v) => format!("{} (no data: absent_value)", number(v)),
            None => "none (no data)".into(),
        },
        Measurement::NaN => "none (NaN, e.g. 0/0)".into(),
        Measurement::NegInf => "none (-Inf)".into(),
        Measurement::Error(e) => format!("error ({:?}): {}", e.kind, e.message),
    }
}

fn raw_json(m: &Measurement) -> serde_json::Value {
    match m {
        Measurement::Value(v) => serde_json::json!({"kind": "value", "value": v}),
        Measurement::NoData => serde_json::json!({"kind": "no_data"}),
        Measurement::NaN => serde_json::json!({"kind": "nan"}),
        Measurement::PosInf => serde_json::json!({"kind": "+inf"}),
        Measurement::NegInf => serde_json::json!({"kind": "-inf"}),
        Measurement::Error(e) => serde_json::json!({"kind": "error", "error": e}),
    }
}

struct Report<'a> {
    exp: &'a Experiment,
    plan: &'a Plan,
    window: Window,
    offset: Option<i64>,
    query_url: String,
    measured: &'a Measured,
    outcome: Result<&'a AnalysisOutcome, String>,
    decision: Option<Decision>,
}

impl Report<'_> {
    fn json(&self) -> serde_json::Value {
        let criteria: Vec<_> = self
            .plan
            .criteria
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let r: Option<&MetricReadings> = self.measured.readings.get(i);
                let a = self
                    .outcome
                    .as_ref()
                    .ok()
                    .and_then(|o| o.assessment.success_criteria.get(i));
                let version = |raw: Option<&iter8_core::VersionReading>, used: Option<&Reading>| {
                    serde_json::json!({
                        "value": used.and_then(|u| u.value).filter(|v| v.is_finite()),
                        "sample_size": used.map(|u| u.sample_size),
                        "measured": raw.map(|r| serde_json::json!({"value": raw_json(&r.value), "sample_size": raw_json(&r.sample_size)})),
                    })
                };
                serde_json::json!({
                    "metric": c.metric.name,
                    "tolerance_type": c.tolerance_type.as_str(),
                    "tolerance": c.tolerance,
                    "sample_size": c.sample_size,
                    "baseline": version(r.map(|r| &r.baseline), a.and_then(|a| a.baseline.as_ref())),
                    "candidate": version(r.map(|r| &r.candidate), a.and_then(|a| a.candidate.as_ref())),
                    "met": a.map(|a| a.success_criterion_met),
                    "abort": a.map(|a| a.abort_experiment),
                    "conclusions": a.map(|a| a.conclusions.clone()),
                })
            })
            .collect();
        serde_json::json!({
            "experiment": {"name": self.exp.name(), "namespace": self.exp.namespace()},
            "strategy": self.plan.strategy.as_str(),
            "baseline": self.plan.baseline,
            "candidate": self.plan.candidate,
            "window": {
                "start": format(self.window.start),
                "end": format(self.window.end),
                "interval_seconds": self.window.interval_secs(),
                "offset_seconds": self.offset,
            },
            "prometheus": {"url": self.query_url, "time": format(self.measured.time), "queries": self.measured.queries},
            "criteria": criteria,
            "assessment": self.outcome.as_ref().ok().map(|o| &o.assessment),
            "error": self.outcome.as_ref().err(),
            "decision": self.decision.as_ref().map(Decision::json),
            "state": self.outcome.as_ref().ok().map(|o| &o.state),
        })
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let p = self.plan;
        out += &format!(
            "Experiment {}.{} ({}): baseline {}, candidate {}\n",
            self.exp.name(),
            self.exp.namespace(),
            p.strategy,
            p.baseline,
            p.candidate
        );
        out += &format!(
            "Window     {} .. {} ({}s{})\n",
            format(self.window.start),
            format(self.window.end),
            self.window.interval_secs(),
            self.offset
                .map(|o| format!(", offset {o}s"))
                .unwrap_or_default()
        );
        out += &format!(
            "Prometheus {} ({} queries, time={})\n",
            self.query_url,
            self.measured.queries.len(),
            format(self.measured.time)
        );
        for (i, c) in p.criteria.iter().enumerate() {
            let a = self
                .outcome
                .as_ref()
                .ok()
                .and_then(|o| o.assessment.success_criteria.get(i));
            out += &format!(
                "\n{}: {} {}, sample size >= {}{}\n",
                c.metric.name,
                c.tolerance_type,
                number(c.tolerance),
                c.sample_size,
                if c.stop_on_failure {
                    ", stop on failure"
                } else {
                    ""
                }
            );
            if let Some(r) = self.measured.readings.get(i) {
                for (label, raw, used) in [
                    (
                        "baseline ",
                        &r.baseline,
                        a.and_then(|a| a.baseline.as_ref()),
                    ),
                    (
                        "candidate",
                        &r.candidate,
                        a.and_then(|a| a.candidate.as_ref()),
                    ),
                ] {
                    out += &format!(
                        "  {label}  value {:<28} sample {}\n",
                        describe(&raw.value, used.and_then(|u| u.value)),
                        describe(&raw.sample_size, used.map(|u| u.sample_size)),
                    );
                }
            }
            if let Some(a) = a {
                out += &format!(
                    "  verdict    {}{}: {}\n",
                    if a.success_criterion_met {
                        "met"
                    } else {
                        "NOT met"
                    },
                    if a.abort_experiment { ", abort" } else { "" },
                    a.conclusions.join(" ").trim_end()
                );
            }
        }
        match (&self.outcome, &self.decision) {
            (Ok(o), Some(d)) => {
                out += &format!("\nAssessment: {}\n", o.assessment.conclusions.join("; "));
                out += &match d.action {
                    "abort" => "Decision:   abort: the experiment ends and traffic returns to the baseline (100/0)\n".to_string(),
                    "complete" => format!(
                        "Decision:   complete: baseline {}, candidate {} ({})\n",
                        d.baseline, d.candidate, d.message
                    ),
                    "new_split" => format!(
                        "Decision:   new split: baseline {}, candidate {} (now {}/{})\n",
                        d.baseline, d.candidate, d.current_baseline, d.current_candidate
                    ),
                    _ => format!(
                        "Decision:   hold: baseline {}, candidate {}\n",
                        d.baseline, d.candidate
                    ),
                };
            }
            (Err(e), _) => out += &format!("\nNo decision: {e}\n"),
            (Ok(_), None) => {}
        }
        out
    }
}

/// Runs `iter8 analyze`: exit 0 with a decision, 1 when the metrics could not be measured.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exp = read_experiment(&args.file, args.name.as_deref())?;
    let metrics = match &args.metrics {
        Some(path) => super::input::read_metrics(path)?,
        None => MetricsConfig::stock_telemetry_v2(),
    };
    let plan = validation::plan(&exp, &metrics).map_err(|problems| {
        anyhow::anyhow!(
            "{} is not a valid experiment:\n  {}",
            exp.name(),
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })?;
    let now = window::now();
    let window = choose_window(&args, &exp, now)?;
    let (_, offset) = interval_and_offset(&window, now)?;
    let client = args.prometheus.client()?;
    let query_url = client.query_url().to_string();
    let source = PrometheusSource::new(client);
    let last_state = last_state(&args, &exp);
    let request = AnalysisRequest::new(&plan, window, last_state.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let measured = runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(600),
                source.measure_at(&request.metrics_query(), now),
            )
            .await
        })
        .context("Prometheus did not answer within 10 minutes")?
        .with_context(|| format!("measuring in Prometheus ({query_url})"))?;
    let outcome = analyze(&request, &measured.readings, &ChaCha).map_err(|e| e.to_string());
    let ctx = engine::Context::new(&metrics, now);
    let decision = outcome
        .as_ref()
        .ok()
        .map(|o| decide(&exp, last_state, args.first_iteration, o, &ctx));
    let report = Report {
        exp: &exp,
        plan: &plan,
        window,
        offset,
        query_url,
        measured: &measured,
        outcome: outcome.as_ref().map_err(Clone::clone),
        decision,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report.json())?),
        Output::Text => print!("{}", report.text()),
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
