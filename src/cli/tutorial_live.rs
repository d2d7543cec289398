//! `iter8 tutorial --live`: the canary tutorial's parts 1 to 4 for real on this machine — the
//! `reviews` versions, a real Envoy routing between them, a real Prometheus scraping Envoy and
//! real traffic, all on 127.0.0.1, with experiments driven by the core in real time. Installs
//! nothing: it says what is missing and how to install it. Stops everything it started when
//! done, on Ctrl-C, or on a panic.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use iter8_core::duration::parse_go;
use iter8_live::tutorial::{LiveOutcome, TutorialOptions, run_tutorial_blocking};

fn duration(text: &str) -> Result<Duration, String> {
    parse_go(text).map_err(|e| e.to_string())
}

/// `--live` and its settings, to flatten into `iter8 tutorial`'s `Args`.
/// `iter8 tutorial --live` and its settings.
#[derive(clap::Args, Debug, Clone)]
pub struct LiveFlag {
    /// Run the tutorial for real on this machine (reviews versions, Envoy, Prometheus, traffic on 127.0.0.1).
    #[arg(long)]
    pub live: bool,
    /// The live run's settings.
    #[command(flatten)]
    pub args: LiveArgs,
}

/// The settings of a live run (`iter8 tutorial --live`).
#[derive(clap::Args, Debug, Clone)]
pub struct LiveArgs {
    /// Live run: every experiment's interval (the tutorial's 30s is replaced).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub interval: Duration,
    /// Live run: fast abort, check stopOnFailure criteria this often between iterations (0s: off).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub abort_check_every: Duration,
    /// Live run: requests per second sent through Envoy.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Live run: run parts 1 to this one (1-4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub parts: u8,
    /// Live run: reviews-v4's latency instead of the tutorial's 5s.
    #[arg(long, value_parser = duration)]
    pub v4_latency: Option<Duration>,
}

/// Runs the live tutorial with `interval` replacing the experiments' interval.
pub fn run_live(interval: Duration, args: &LiveArgs) -> anyhow::Result<ExitCode> {
    let options = TutorialOptions {
        interval,
        abort_check_every: Some(args.abort_check_every).filter(|d| !d.is_zero()),
        rate_per_sec: args.rate,
        last_part: args.parts,
        v4_latency: args.v4_latency,
        ..TutorialOptions::default()
    };
    let print = Box::new(|text: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    });
    match run_tutorial_blocking(&options, print)? {
        LiveOutcome::Finished(report) => {
            if let Some(secs) = report.abort_seconds {
                println!("Fast abort (part 3): {secs:.1}s from the first HTTP 500 to rollback.");
            }
            Ok(ExitCode::SUCCESS)
        }
        LiveOutcome::Interrupted => {
            eprintln!("interrupted: stopped Envoy, Prometheus and the reviews versions");
            Ok(ExitCode::from(130))
        }
    }
}
