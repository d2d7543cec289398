//! `iter8 validate`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `iter8 validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment manifests (multi-document YAML; other kinds are skipped).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The metrics ConfigMap to check metric names against (default: stock telemetry v2).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
}

/// Runs `iter8 validate`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
