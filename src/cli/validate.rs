//! `iter8 validate`: parse and validate Experiment manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use iter8_core::MetricsConfig;
use iter8_core::manifest::{self, ExperimentDocument};
use iter8_core::validation::{self, MetricCheck, Severity};

/// Flags of `iter8 validate`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment manifests (multi-document YAML; other kinds are skipped).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The metrics ConfigMap to check metric names against. Without it, the stock telemetry-v2
    /// configuration is used and unknown metrics are warnings (the cluster's may define them).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
}

/// Runs `iter8 validate`: valid experiments are printed (defaults filled in) on stdout,
/// problems on stderr; exit code 1 when any experiment is invalid.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (metrics, check) = match &args.metrics {
        Some(path) => (super::input::read_metrics(path)?, MetricCheck::Strict),
        None => (MetricsConfig::stock_telemetry_v2(), MetricCheck::Lenient),
    };
    let mut invalid = 0usize;
    let mut valid = Vec::new();
    for path in &args.files {
        let text = super::input::read(path)?;
        let docs = match manifest::parse_experiments(&text) {
            Ok(docs) => docs,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                invalid += 1;
                continue;
            }
        };
        for doc in docs {
            match doc {
                Err(e) => {
                    eprintln!("{}: error: {e}", path.display());
                    invalid += 1;
                }
                Ok(doc) => {
                    if report(path, &doc, &metrics, check) {
                        valid.push(doc.experiment.with_defaults());
                    } else {
                        invalid += 1;
                    }
                }
            }
        }
    }
    for exp in &valid {
        println!("---");
        print!("{}", manifest::to_yaml(exp)?);
    }
    if invalid > 0 {
        eprintln!("{invalid} invalid experiment(s)");
        return Ok(ExitCode::from(1));
    }
    if valid.is_empty() {
        eprintln!("no Experiment found");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a document's problems; whether it is valid.
fn report(
    path: &std::path::Path,
    doc: &ExperimentDocument,
    metrics: &MetricsConfig,
    check: MetricCheck,
) -> bool {
    let mut problems = validation::validate(&doc.experiment, metrics, check);
    problems.extend(doc.unknown_fields.iter().map(|f| validation::Problem {
        severity: Severity::Error,
        path: f.clone(),
        rule: "unknown field".to_string(),
    }));
    let name = doc.experiment.name();
    for p in &problems {
        let level = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        eprintln!(
            "{} (document {}, experiment {name}): {level}: {p}",
            path.display(),
            doc.index + 1
        );
    }
    !validation::has_errors(&problems)
}
