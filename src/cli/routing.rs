//! `iter8 routing`: prints the objects iter8 would apply for an experiment at a stage, without
//! touching a cluster: iter8's Istio rules, or, for an experiment with `spec.routingReference`,
//! the user's VirtualService or Gateway API HTTPRoute (given with `--route`) as iter8 changes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::RoutingReference;
use iter8_core::model::{Experiment, TrafficSplit};
use iter8_gateway_api::HTTPRoute;
use iter8_istio::build::{self, RoutingTarget, Stage};
use iter8_istio::labels::{bookinfo_labels, format_labels, parse_labels};
use iter8_istio::{VirtualService, reference};
use serde_json::Value;

/// Who keeps the traffic in `--final`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FinalWinner {
    /// Roll back: all traffic to the baseline.
    Baseline,
    /// Promote: all traffic to the candidate.
    Candidate,
}

/// Flags of `iter8 routing`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment manifest (multi-document YAML; other kinds are skipped).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Namespace of experiments whose manifest names none (as `kubectl apply -n`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Pod-template labels of the baseline Deployment (default: app=<service>,version=<suffix>).
    #[arg(long, value_name = "K=V,...")]
    pub baseline_labels: Option<String>,
    /// Pod-template labels of the candidate Deployment (default: app=<service>,version=<suffix>).
    #[arg(long, value_name = "K=V,...")]
    pub candidate_labels: Option<String>,
    /// Show the rules serving this split, e.g. `80/20` (default: the start, 100/0).
    #[arg(long, value_name = "BASELINE/CANDIDATE", conflicts_with_all = ["final_winner", "initializing"])]
    pub split: Option<String>,
    /// Show the stable rules left at the end, routing all traffic to the winner.
    #[arg(
        long = "final",
        value_name = "WINNER",
        value_enum,
        conflicts_with = "initializing"
    )]
    pub final_winner: Option<FinalWinner>,
    /// Show the rules used while the candidate is not deployed yet (baseline only).
    #[arg(long)]
    pub initializing: bool,
    /// The routing object the experiment's spec.routingReference names (an HTTPRoute or a
    /// VirtualService manifest): printed as iter8 leaves it at the stage.
    #[arg(long, value_name = "FILE")]
    pub route: Option<PathBuf>,
}

/// Parses `BASELINE/CANDIDATE` into a split of whole percentages summing to 100.
pub fn parse_split(text: &str) -> anyhow::Result<TrafficSplit> {
    let Some((b, c)) = text.split_once('/') else {
        bail!("--split {text}: expected BASELINE/CANDIDATE, e.g. 80/20");
    };
    let num = |s: &str| {
        s.trim()
            .parse::<u32>()
            .with_context(|| format!("--split {text}: `{s}` is not a whole percentage"))
    };
    let split = TrafficSplit {
        baseline: num(b)?,
        candidate: num(c)?,
    };
    if split.baseline.checked_add(split.candidate) != Some(100) {
        bail!("--split {text}: the percentages must add up to 100");
    }
    Ok(split)
}

/// The routing action the flags ask for (`--initializing` is an `Initialize` without the
/// candidate).
fn action(args: &Args) -> anyhow::Result<RoutingAction> {
    Ok(match (args.final_winner, &args.split) {
        (Some(FinalWinner::Baseline), _) => RoutingAction::Finalize {
            winner: Winner::Baseline,
            split: TrafficSplit::ALL_BASELINE,
        },
        (Some(FinalWinner::Candidate), _) => RoutingAction::Finalize {
            winner: Winner::Candidate,
            split: TrafficSplit::ALL_CANDIDATE,
        },
        (None, Some(split)) => RoutingAction::SetSplit(parse_split(split)?),
        (None, None) => RoutingAction::Initialize,
    })
}

fn stage(args: &Args) -> anyhow::Result<Stage> {
    if args.initializing {
        return Ok(Stage::Initializing);
    }
    Ok(Stage::for_action(&action(args)?, true))
}

fn labels_flag(
    flag: &str,
    value: &Option<String>,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    match value {
        None => Ok(None),
        Some(text) => {
            let labels = parse_labels(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
            if labels.is_empty() {
                bail!("--{flag}: no labels given");
            }
            Ok(Some(labels))
        }
    }
}

/// The experiment's routing target with the versions' pod-template labels from the flags (or
/// assumed as in Bookinfo, with a note).
fn target_with_labels(exp: &Experiment, args: &Args) -> anyhow::Result<RoutingTarget> {
    let target = RoutingTarget::from_experiment(exp)?;
    let service = exp.spec.target_service.name.clone().unwrap_or_default();
    let mut labels = Vec::new();
    for (version, flag, given) in [
        (&target.baseline, "baseline-labels", &args.baseline_labels),
        (
            &target.candidate,
            "candidate-labels",
            &args.candidate_labels,
        ),
    ] {
        let chosen = match labels_flag(flag, given)? {
            Some(l) => l,
            None => {
                let assumed = bookinfo_labels(&service, &version.name);
                if target.uses_subsets() {
                    eprintln!(
                        "note: {}: assuming Deployment {} has pod-template labels {} (as in Bookinfo); set --{flag} otherwise",
                        target.experiment,
                        version.name,
                        format_labels(&assumed)
                    );
                }
                assumed
            }
        };
        labels.push(chosen);
    }
    let candidate = labels.pop();
    let baseline = labels.pop();
    Ok(target.with_labels(baseline, candidate))
}

/// The YAML documents of one experiment's objects at `stage`.
fn render(exp: &Experiment, stage: &Stage, args: &Args) -> anyhow::Result<Vec<String>> {
    let target = target_with_labels(exp, args)?;
    let objects = build::build(&target, stage, true)?;
    let mut docs = vec![serde_saphyr::to_string(&objects.virtual_service)?];
    if let Some(dr) = &objects.destination_rule {
        docs.push(serde_saphyr::to_string(dr)?);
    }
    Ok(docs)
}

/// The document of `--route` that the reference names (kind and name), in the reference's
/// namespace (or the experiment's).
fn referenced_document(
    args: &Args,
    reference: &RoutingReference,
    exp: &Experiment,
) -> anyhow::Result<Value> {
    let Some(path) = &args.route else {
        bail!(
            "spec.routingReference names {} {}: give that object's manifest with --route FILE",
            reference.kind(),
            reference.name()
        );
    };
    let text = super::input::read(path)?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).with_context(|| format!("in {}", path.display()))?;
    let mut doc = docs
        .into_iter()
        .find(|d| d["kind"] == reference.kind() && d["metadata"]["name"] == reference.name())
        .with_context(|| {
            format!(
                "{}: no {} named {}",
                path.display(),
                reference.kind(),
                reference.name()
            )
        })?;
    if doc["metadata"]["namespace"].is_null() {
        let namespace = reference.namespace.as_deref().unwrap_or(exp.namespace());
        doc["metadata"]["namespace"] = namespace.into();
    }
    Ok(doc)
}

/// The YAML documents of an experiment with `spec.routingReference` at the stage: the user's
/// object as iter8 leaves it (and iter8's DestinationRule, Deployment kind).
fn render_referenced(
    exp: &Experiment,
    reference: &RoutingReference,
    args: &Args,
) -> anyhow::Result<Vec<String>> {
    let doc = referenced_document(args, reference, exp)?;
    if reference.is_http_route() {
        let route: HTTPRoute = serde_json::from_value(doc).context("reading the HTTPRoute")?;
        let target = iter8_gateway_api::RouteTarget::from_experiment(exp)?;
        let stage = if args.initializing {
            iter8_gateway_api::Stage::initializing()
        } else {
            iter8_gateway_api::Stage::for_action(&action(args)?)
        };
        let changed = iter8_gateway_api::route::at_stage(&route, &target, &stage)?;
        return Ok(vec![serde_saphyr::to_string(&changed)?]);
    }
    reference::referenced(reference, exp.namespace())?;
    let vs: VirtualService = serde_json::from_value(doc).context("reading the VirtualService")?;
    let target = target_with_labels(exp, args)?;
    let stage = stage(args)?;
    let mut docs = vec![serde_saphyr::to_string(&reference::at_stage(
        &vs, &target, &stage, false,
    )?)?];
    if target.uses_subsets() {
        let dr = build::destination_rule(&target, &stage, &target.name, true)?;
        docs.push(serde_saphyr::to_string(&dr)?);
    }
    Ok(docs)
}

/// Runs `iter8 routing`: the objects on stdout as multi-document YAML, notes on stderr.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stage = stage(&args)?;
    let path = &args.file;
    let docs = super::input::read_experiments(path)?;
    if docs.is_empty() {
        bail!("{}: no Experiment found", path.display());
    }
    let mut out = Vec::new();
    for doc in docs {
        let mut exp = doc.experiment;
        if let Some(ns) = &args.namespace {
            match exp.metadata.namespace.as_deref() {
                Some(own) if own != ns => bail!(
                    "{}: experiment {} is in namespace {own}, not {ns}",
                    path.display(),
                    exp.name()
                ),
                _ => exp.metadata.namespace = Some(ns.clone()),
            }
        }
        let rendered = match &exp.spec.routing_reference {
            Some(reference) => render_referenced(&exp, reference, &args),
            None => render(&exp, &stage, &args),
        }
        .with_context(|| format!("experiment {}", exp.name()))?;
        out.extend(rendered);
    }
    print!("{}", join_documents(&out));
    Ok(ExitCode::SUCCESS)
}

/// Joins YAML documents with `---` lines.
fn join_documents(docs: &[String]) -> String {
    docs.iter()
        .map(|d| {
            let d = d.strip_prefix("---\n").unwrap_or(d);
            if d.ends_with('\n') {
                format!("---\n{d}")
            } else {
                format!("---\n{d}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_must_be_whole_and_add_up() {
        assert_eq!(
            parse_split("80/20").ok(),
            Some(TrafficSplit {
                baseline: 80,
                candidate: 20
            })
        );
        assert!(parse_split("80/30").is_err());
        assert!(parse_split("80").is_err());
        assert!(parse_split("80.5/19.5").is_err());
        assert!(parse_split("-1/101").is_err());
    }
}
