//! The iter8 v0.2 canary tutorial, parts 1 to 4, for real on 127.0.0.1: `reviews-v2` serves,
//! each experiment is applied, its candidate deployed, and the core's driver runs it with the
//! interval shortened, while load flows through Envoy and Prometheus scrapes Envoy.

use std::collections::BTreeMap;
use std::time::Duration;

use iter8_core::GoDuration;
use iter8_core::manifest::parse_experiments;
use iter8_core::model::Experiment;

use crate::LiveError;
use crate::driver::{DriverOptions, LiveDriver, Printer, RunRecord, describe_steps};
use crate::load::LoadStats;
use crate::process::{ENVOY, PROMETHEUS, missing};
use crate::stack::{LiveStack, StackOptions};
use iter8_envoy::metrics::envoy_metrics;

/// The namespace the tutorial's experiments live in.
pub const NAMESPACE: &str = "bookinfo-iter8";

/// One part: its title, the experiment manifest and the candidate it deploys.
struct Part {
    number: u8,
    title: &'static str,
    manifest: &'static str,
    candidate: &'static str,
}

const PARTS: [Part; 4] = [
    Part {
        number: 1,
        title: "Successful canary release: reviews-v2 to reviews-v3",
        manifest: include_str!("../../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml"),
        candidate: "reviews-v3",
    },
    Part {
        number: 2,
        title: "High-latency canary release: reviews-v3 to reviews-v4",
        manifest: include_str!("../../examples/bookinfo/canary_reviews-v3_to_reviews-v4.yaml"),
        candidate: "reviews-v4",
    },
    Part {
        number: 3,
        title: "Error-producing canary release: reviews-v3 to reviews-v5",
        manifest: include_str!("../../examples/bookinfo/canary_reviews-v3_to_reviews-v5.yaml"),
        candidate: "reviews-v5",
    },
    Part {
        number: 4,
        title: "Using a custom metric: reviews-v3 to reviews-v6",
        manifest: include_str!("../../examples/bookinfo/canary_reviews-v3_to_reviews-v6.yaml"),
        candidate: "reviews-v6",
    },
];

/// How to run the tutorial.
#[derive(Debug, Clone, PartialEq)]
pub struct TutorialOptions {
    /// Replaces every experiment's `interval`.
    pub interval: Duration,
    /// Fast abort: how often `stopOnFailure` criteria are checked between iterations.
    pub abort_check_every: Option<Duration>,
    /// Requests per second sent through Envoy.
    pub rate_per_sec: f64,
    /// Run parts 1 to `last_part` (1..=4).
    pub last_part: u8,
    /// Replaces reviews-v4's 5 s latency (e.g. 500 ms for a quicker run).
    pub v4_latency: Option<Duration>,
    /// How often Prometheus scrapes Envoy.
    pub scrape_every: Duration,
}

impl Default for TutorialOptions {
    fn default() -> Self {
        TutorialOptions {
            interval: Duration::from_secs(5),
            abort_check_every: Some(Duration::from_secs(5)),
            rate_per_sec: 20.0,
            last_part: 4,
            v4_latency: None,
            scrape_every: Duration::from_secs(1),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct TutorialReport {
    /// Each part's run, in order (part number, record).
    pub parts: Vec<(u8, RunRecord)>,
    /// Part 3: seconds from the first 5xx the load generator saw to Envoy confirming the
    /// candidate's weight 0.
    pub abort_seconds: Option<f64>,
    /// The load generator's counts.
    pub load: LoadStats,
}

/// Reads one of the tutorial's experiments, in the tutorial's namespace, with `interval`.
pub fn tutorial_experiment(manifest: &str, interval: Duration) -> Result<Experiment, LiveError> {
    let docs = parse_experiments(manifest).map_err(|e| LiveError::Setup(e.to_string()))?;
    let mut exp = docs
        .into_iter()
        .next()
        .ok_or_else(|| LiveError::Setup("no Experiment in the manifest".into()))?
        .map_err(|e| LiveError::Setup(e.to_string()))?
        .experiment;
    exp.metadata.namespace = Some(NAMESPACE.to_string());
    exp.spec.traffic_control.interval = Some(GoDuration::from_std(interval));
    Ok(exp)
}

fn max_iterations(exp: &Experiment) -> u64 {
    exp.spec
        .traffic_control
        .max_iterations
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(100)
}

/// Runs the tutorial; everything started is stopped before this returns (or when the future
/// is dropped, e.g. on Ctrl-C).
pub async fn run_tutorial(
    options: &TutorialOptions,
    mut print: Printer<'_>,
) -> Result<TutorialReport, LiveError> {
    let parts: Vec<&Part> = PARTS
        .iter()
        .filter(|p| p.number <= options.last_part.clamp(1, 4))
        .collect();
    let experiments = parts
        .iter()
        .map(|p| tutorial_experiment(p.manifest, options.interval))
        .collect::<Result<Vec<_>, _>>()?;
    let budget = |exp: &Experiment| {
        options.interval * (max_iterations(exp).min(1000) as u32 + 2) + Duration::from_secs(60)
    };
    let total: Duration = experiments.iter().map(budget).sum();
    let absent = missing(&[ENVOY, PROMETHEUS]);
    if !absent.is_empty() {
        return Err(LiveError::Missing(
            absent.iter().map(ToString::to_string).collect(),
        ));
    }

    print(&format!(
        "Starting reviews-v2, Envoy and Prometheus on 127.0.0.1 (interval {}s, fast abort {})\n",
        options.interval.as_secs_f64(),
        options
            .abort_check_every
            .map_or("off".to_string(), |d| format!("every {}s", d.as_secs_f64()))
    ));
    let mut latency_overrides = BTreeMap::new();
    if let Some(l) = options.v4_latency {
        latency_overrides.insert("reviews-v4".to_string(), l);
    }
    let stack = LiveStack::start(
        StackOptions {
            namespace: NAMESPACE.to_string(),
            scrape_every: options.scrape_every,
            latency_overrides,
            ..StackOptions::default()
        },
        "reviews-v2",
    )
    .await?;
    let pids = stack
        .pids()
        .iter()
        .map(|(name, pid)| format!("{name} pid {pid}"))
        .collect::<Vec<_>>()
        .join(", ");
    print(&format!(
        "  Envoy: {} (admin {}), Prometheus: {}; {pids}; work directory {}\n",
        stack.layout().listener_url(),
        stack.layout().admin_url(),
        stack.prometheus_url(),
        stack.work_dir().display()
    ));
    stack.start_load(options.rate_per_sec, total)?;
    print(&format!(
        "  Sending {} requests per second to {}\n",
        options.rate_per_sec,
        stack.service_url()
    ));

    let metrics = envoy_metrics().map_err(|e| LiveError::Setup(e.to_string()))?;
    let driver_options = DriverOptions {
        abort_check_every: options.abort_check_every,
        max_sleep: options.interval,
        error_retry: Duration::from_secs(1),
    };
    let mut driver = LiveDriver::new(&stack, metrics, driver_options, print)?;
    let mut report = TutorialReport {
        parts: Vec::new(),
        abort_seconds: None,
        load: LoadStats::default(),
    };
    for (part, exp) in parts.iter().zip(experiments) {
        let name = exp.name().to_string();
        driver.say(&format!("\n## Part {}: {}", part.number, part.title));
        if part.number == 4 {
            driver.say(
                "(the Envoy metrics configuration already defines iter8_90_perc_latency: nothing to apply)",
            );
        }
        let limit = budget(&exp);
        driver.apply(exp);
        // Ignore a failure here: the run below retries and reports it.
        let _ = driver.reconcile(&name).await;
        let addr = stack.deploy(part.candidate).await?;
        driver.say(&format!(
            "deployment.apps/{} created (listening on {addr})",
            part.candidate
        ));
        if part.number == 3 {
            stack.reset_first_5xx();
        }
        let record = driver.run_to_completion(&name, limit).await?;
        driver.say("What Envoy served (its per-cluster request counts between routing changes):");
        let steps = describe_steps(&record);
        driver.say(steps.trim_end());
        if part.number == 3
            && let (Some(first), Some(rollback)) =
                (stack.load_stats().first_5xx, record.rollback_at)
        {
            let secs = rollback.saturating_duration_since(first).as_secs_f64();
            report.abort_seconds = Some(secs);
            driver.say(&format!(
                "Fast abort: {secs:.1}s from the first HTTP 500 to Envoy serving reviews-v5 0%"
            ));
        }
        report.parts.push((part.number, record));
    }
    report.load = stack.load_stats();
    let pids = stack
        .pids()
        .iter()
        .map(|(name, pid)| format!("{name} (pid {pid})"))
        .collect::<Vec<_>>()
        .join(", ");
    driver.say(&format!(
        "\nLoad: {} requests sent, {} ok, {} HTTP 5xx, {} failed. Stopping {pids} and the reviews versions.",
        report.load.sent, report.load.ok, report.load.errors_5xx, report.load.failed
    ));
    drop(driver);
    stack.stop();
    Ok(report)
}

/// How a blocking run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveOutcome {
    /// All parts ran.
    Finished(TutorialReport),
    /// Ctrl-C: everything started was stopped.
    Interrupted,
}

/// Runs the tutorial on its own tokio runtime until done or Ctrl-C; everything started is
/// stopped in both cases (and on panic, by the stack's drop guards).
pub fn run_tutorial_blocking(
    options: &TutorialOptions,
    print: Printer<'_>,
) -> Result<LiveOutcome, LiveError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LiveError::Setup(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        tokio::select! {
            result = run_tutorial(options, print) => result.map(LiveOutcome::Finished),
            _ = tokio::signal::ctrl_c() => Ok(LiveOutcome::Interrupted),
        }
    })
}
