//! `iter8 crd`: print the Experiment CRD (`experiments.iter8.tools`) as YAML.

use std::process::ExitCode;

/// Flags of `iter8 crd` (none).
#[derive(clap::Args)]
pub struct Args {}

/// Prints the CRD generated from iter8-kubernetes' types.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    print!("{}", iter8_kubernetes::crd_yaml()?);
    Ok(ExitCode::SUCCESS)
}
