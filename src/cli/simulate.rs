//! `iter8 simulate`: a what-if for any experiment: runs it in a simulated cluster against a
//! traffic profile and prints the per-iteration timeline and the final table row.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use iter8_core::{Experiment, MetricsConfig, table};
use iter8_sim::{Profile, plot, whatif};

/// Flags of `iter8 simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// The Experiment manifest (one Experiment; other kinds are skipped).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Traffic profiles: the request rate and each version's latency and errors (repeatable;
    /// later files add versions and override the rate). See docs/simulation.md.
    #[arg(long = "profile", required = true)]
    pub profiles: Vec<PathBuf>,
    /// The metrics ConfigMap (default: the stock telemetry-v2 configuration).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Seed of the simulated traffic (same seed, same output).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also draw request rate, mean latency and split over the experiment into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Reads the one Experiment of a manifest; unknown fields are errors (a typo would otherwise
/// run with defaults).
pub fn read_experiment(path: &Path) -> anyhow::Result<Experiment> {
    let name = path.display();
    let mut experiments = Vec::new();
    for doc in super::input::read_experiments(path)? {
        if !doc.unknown_fields.is_empty() {
            bail!(
                "{name}: unknown field(s) in experiment {}: {}",
                doc.experiment.name(),
                doc.unknown_fields.join(", ")
            );
        }
        experiments.push(doc.experiment);
    }
    match experiments.len() {
        0 => bail!("{name}: no Experiment in the file"),
        1 => Ok(experiments.remove(0)),
        n => bail!("{name}: {n} Experiments in the file; simulate one at a time"),
    }
}

/// Runs `iter8 simulate`: exit code 0 when the simulated experiment succeeds, 1 when it fails
/// or does not complete.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let experiment = read_experiment(&args.file)?;
    let mut profile = Profile::default();
    for path in &args.profiles {
        let text = super::input::read(path)?;
        profile.merge(Profile::from_yaml(&text, &path.display().to_string())?);
    }
    let metrics = match &args.metrics {
        Some(path) => super::input::read_metrics(path)?,
        None => MetricsConfig::stock_telemetry_v2(),
    };
    let report = whatif::run(&experiment, &profile, &metrics, args.seed)
        .with_context(|| format!("simulating {}", args.file.display()))?;
    print!("{}", report.render());
    println!();
    print!("{}", table::render([&report.experiment]));
    if let Some(path) = &args.plot {
        let svg = plot::render_svg(&report.plot)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
