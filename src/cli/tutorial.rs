//! `iter8 tutorial`: replays the five parts of the iter8 v0.2 canary tutorial in a simulated
//! cluster, in virtual time, printing `kubectl get experiments` wherever the tutorial does;
//! `--live` runs it for real on this machine (Envoy, Prometheus, real traffic).

use std::process::ExitCode;

use iter8_sim::tutorial::{self, Options, Telemetry};

/// Istio telemetry flavours.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TelemetryArg {
    /// Mixer telemetry (`istio-mesh` job, seconds).
    V1,
    /// Envoy stats (`envoy-stats` job, milliseconds): Istio 1.5 and later.
    V2,
}

/// Flags of `iter8 tutorial`.
#[derive(clap::Args)]
pub struct Args {
    /// Seed of the simulated traffic (same seed, same output).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Istio telemetry of the simulated cluster (which metrics ConfigMaps are applied).
    #[arg(long, value_enum, default_value = "v2")]
    pub telemetry: TelemetryArg,
    /// `--live`: run parts 1 to 4 for real on this machine instead (see docs/envoy.md).
    #[command(flatten)]
    pub live: super::tutorial_live::LiveFlag,
}

/// Runs `iter8 tutorial`: prints the replay on stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.live.live {
        return super::tutorial_live::run_live(args.live.args.interval, &args.live.args);
    }
    let options = Options {
        seed: args.seed,
        telemetry: match args.telemetry {
            TelemetryArg::V1 => Telemetry::V1,
            TelemetryArg::V2 => Telemetry::V2,
        },
    };
    let transcript = tutorial::run(&options)?;
    print!("{}", transcript.text);
    Ok(ExitCode::SUCCESS)
}
