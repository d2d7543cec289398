//! Reading the files subcommands take — Experiment manifests and metrics ConfigMaps — with the
//! file named in every error.

use std::path::Path;

use anyhow::Context as _;
use iter8_core::MetricsConfig;
use iter8_core::manifest::{self, ExperimentDocument};

/// A file's text.
pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Every Experiment of a (multi-document) manifest; the first malformed one is an error.
pub fn read_experiments(path: &Path) -> anyhow::Result<Vec<ExperimentDocument>> {
    manifest::parse_experiments(&read(path)?)
        .with_context(|| format!("in {}", path.display()))?
        .into_iter()
        .map(|doc| doc.with_context(|| format!("in {}", path.display())))
        .collect()
}

/// A metrics ConfigMap file.
pub fn read_metrics(path: &Path) -> anyhow::Result<MetricsConfig> {
    MetricsConfig::from_configmap_yaml(&read(path)?)
        .with_context(|| format!("in {}", path.display()))
}
