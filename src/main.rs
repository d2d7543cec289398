//! `iter8`: the command-line tool and operator. Parses flags, builds adapters, runs the core.

mod cli;
mod process;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Automated canary releases for Kubernetes and Istio, compatible with iter8 v0.2.
#[derive(Parser)]
#[command(name = "iter8", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and validate Experiment manifests; print them with defaults filled in.
    Validate(cli::validate::Args),
    /// Run the operator: reconcile Experiments in the cluster (Istio routing, Prometheus metrics).
    Operator(Box<cli::operator::Args>),
    /// Print the Experiment CRD (experiments.iter8.tools) as YAML.
    Crd(cli::crd::Args),
    /// Print the install bundle (namespace, CRD, RBAC, operator, metrics ConfigMap) as YAML.
    Install(cli::install::Args),
    /// Print the Istio VirtualService and DestinationRule iter8 would apply at a stage (no cluster).
    Routing(cli::routing::Args),
    /// Print the Grafana dashboard (uid eXPEaNnZz) as JSON, or push it to Grafana.
    Dashboard(cli::dashboard::Args),
    /// Replay the iter8 v0.2 canary tutorial in a simulated cluster (virtual time).
    Tutorial(cli::tutorial::Args),
    /// What-if: run an experiment in a simulated cluster against a traffic profile.
    Simulate(cli::simulate::Args),
    /// Analyse any window retrospectively: per-criterion values and verdicts, and the decision.
    Analyze(cli::analyze::Args),
    /// Serve the iter8-analytics v0.2.1 REST API (a drop-in analytics service).
    Analytics(cli::analytics::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Operator(args) => cli::operator::run(*args),
        Command::Crd(args) => cli::crd::run(args),
        Command::Install(args) => cli::install::run(args),
        Command::Routing(args) => cli::routing::run(args),
        Command::Dashboard(args) => cli::dashboard::run(args),
        Command::Analyze(args) => cli::analyze::run(args),
        Command::Analytics(args) => cli::analytics::run(args),
        Command::Tutorial(args) => cli::tutorial::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
