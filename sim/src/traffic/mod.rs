//! The traffic model: request sources at a fixed rate, split per request by the routing in
//! force when the request arrives, answered by each version according to its profile, and
//! counted per version and per second as Istio's sidecars count them.
//!
//! [`Traffic`] holds the sources, the series and the profiles; [`counters`] is what a series
//! counts, [`routes`] resolves where a source's requests go, [`load`] generates them.

pub mod counters;
pub mod load;
pub mod routes;

use std::collections::BTreeSet;

use iter8_core::measurement::VersionTags;
use rand_distr::Bernoulli;
use rustc_hash::FxHashMap;

use crate::by_name::{self, ByName};
use crate::clock::SimTime;
use crate::profile::{LatencyDistribution, Profile, VersionProfile};

pub use counters::{BUCKET_MS, HISTOGRAM_LEN, LATENCY_BOUNDS_MS, Series, Totals};
pub use load::Source;
pub use routes::Target;

/// Every source and series, and the versions' profiles.
#[derive(Debug, Clone)]
pub struct Traffic {
    seed: u64,
    sources: Vec<Source>,
    series: Vec<Series>,
    /// Namespace, workload -> indices into `series`.
    by_workload: ByName<Vec<usize>>,
    /// Namespace, service -> indices into `series`.
    by_service: ByName<Vec<usize>>,
    /// By Deployment or Service name.
    profiles: FxHashMap<String, VersionProfile>,
    /// The metrics some profile gives a value for.
    given: BTreeSet<String>,
    /// Up to when requests have been generated.
    horizon: SimTime,
    /// Bumped when profiles are added (sources resolve their routes again).
    profiles_generation: u64,
}

/// How a version answers when no profile is given: 10 ms, no errors.
fn default_profile() -> VersionProfile {
    VersionProfile::fixed(10.0)
}

impl Traffic {
    /// No sources yet; randomness derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Traffic {
            seed,
            sources: Vec::new(),
            series: Vec::new(),
            by_workload: ByName::default(),
            by_service: ByName::default(),
            profiles: FxHashMap::default(),
            given: BTreeSet::new(),
            horizon: SimTime::ZERO,
            profiles_generation: 0,
        }
    }

    /// The sources.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Adds (or replaces) version profiles.
    pub fn add_profiles(&mut self, profile: &Profile) {
        for (name, v) in &profile.versions {
            self.given.extend(v.metrics.keys().cloned());
            self.profiles.insert(name.clone(), v.clone());
        }
        self.profiles_generation += 1;
    }

    /// The profile of a version (by Deployment, then Service name), if one was given.
    pub fn profile(&self, workload: &str, service: &str) -> Option<&VersionProfile> {
        self.profiles
            .get(workload)
            .or_else(|| self.profiles.get(service))
    }

    /// How a version answers: its latency and errors (the default profile when none was given).
    fn answer(&self, workload: &str, service: &str) -> (LatencyDistribution, Bernoulli) {
        let given = self.profile(workload, service);
        let profile = given.cloned().unwrap_or_else(default_profile);
        (profile.latency.distribution(), profile.errors())
    }

    /// Whether some version's profile gives a value for this metric.
    pub fn profile_gives(&self, metric: &str) -> bool {
        self.given.contains(metric)
    }

    /// Every series.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The series carrying these labels, in the order they were created.
    pub fn matching(&self, tags: &VersionTags) -> Vec<&Series> {
        let namespace = tags
            .get("destination_workload_namespace")
            .or_else(|| tags.get("destination_service_namespace"));
        let indexed = match (
            namespace,
            tags.get("destination_workload"),
            tags.get("destination_service_name"),
        ) {
            (Some(ns), Some(workload), _) => Some(by_name::find(&self.by_workload, ns, workload)),
            (Some(ns), None, Some(service)) => Some(by_name::find(&self.by_service, ns, service)),
            _ => None,
        };
        match indexed {
            Some(found) => found
                .into_iter()
                .flatten()
                .map(|&i| &self.series[i])
                .filter(|s| s.matches(tags))
                .collect(),
            None => self.series.iter().filter(|s| s.matches(tags)).collect(),
        }
    }

    /// Up to when requests have been generated.
    pub fn horizon(&self) -> SimTime {
        self.horizon
    }

    /// The index of the series of `workload` behind `service`, created (starting at `at_ms`)
    /// if need be.
    fn series_index(
        &mut self,
        namespace: &str,
        workload: &str,
        service: &str,
        at_ms: f64,
    ) -> usize {
        let existing = by_name::find(&self.by_workload, namespace, workload)
            .into_iter()
            .flatten()
            .copied()
            .find(|&i| self.series[i].service == service);
        if let Some(i) = existing {
            return i;
        }
        let i = self.series.len();
        self.series
            .push(Series::new(namespace, workload, service, at_ms));
        by_name::entry(&mut self.by_workload, namespace, workload).push(i);
        by_name::entry(&mut self.by_service, namespace, service).push(i);
        i
    }
}
