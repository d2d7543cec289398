//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod analytics;
pub mod analyze;
pub mod crd;
pub mod dashboard;
pub mod input;
pub mod install;
pub mod operator;
pub mod prometheus;
pub mod routing;
pub mod simulate;
pub mod tutorial;
pub mod tutorial_live;
pub mod validate;
