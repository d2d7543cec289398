//! What the crate's unit tests build again and again: the reviews service of namespace `ns`,
//! its versions, load on it and experiments on it.

use iter8_core::Experiment;

use crate::clock::SimTime;
use crate::cluster::{Cluster, Deployment, Service};
use crate::traffic::{Target, Traffic};

/// An experiment `name` in `ns` on the reviews service, from `baseline` to `candidate`.
pub fn experiment(name: &str, baseline: &str, candidate: &str) -> Experiment {
    let text = format!(
        "apiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  targetService: {{name: reviews, baseline: {baseline}, candidate: {candidate}}}\n"
    );
    match iter8_core::manifest::parse_experiments(&text)
        .unwrap()
        .pop()
    {
        Some(Ok(d)) => d.experiment,
        _ => panic!("not an experiment"),
    }
}

/// A reviews Deployment `name` whose pods carry `version`.
pub fn deployment(name: &str, version: &str) -> Deployment {
    Deployment {
        namespace: "ns".into(),
        name: name.into(),
        pod_labels: [("app", "reviews"), ("version", version)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The reviews Service with one version, reviews-v2.
pub fn reviews_cluster() -> Cluster {
    let mut c = Cluster::default();
    c.apply_service(Service {
        namespace: "ns".into(),
        name: "reviews".into(),
        selector: [("app".to_string(), "reviews".to_string())].into(),
    });
    c.apply_deployment(deployment("reviews-v2", "v2"));
    c
}

/// The reviews Service, as a load generator addresses it.
pub fn reviews() -> Target {
    Target::Service {
        namespace: "ns".into(),
        name: "reviews".into(),
    }
}

/// Traffic (randomness from `seed`) with one source sending `rate` requests per second to the
/// reviews Service from time 0.
pub fn reviews_traffic(seed: u64, rate: f64) -> Traffic {
    let mut t = Traffic::new(seed);
    t.add_source(reviews(), rate, SimTime::ZERO);
    t
}
