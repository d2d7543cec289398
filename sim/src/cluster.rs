//! The simulated cluster: Deployments, Services and Istio Gateways, applied from manifests and
//! deleted on cleanup. Only what routing and traffic need is kept (names, labels, selectors,
//! gateway hosts).

use std::collections::{BTreeMap, BTreeSet};

use iter8_core::manifest;
use iter8_core::metrics_config::CONFIGMAP_NAME;
use iter8_core::{Experiment, MetricsConfig};
use serde_json::Value;

use rustc_hash::FxHashMap;

use crate::by_name::{ByName, find, put, take};

/// Labels or a label selector.
pub type Labels = BTreeMap<String, String>;

/// A manifest the simulator cannot apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML (or JSON) documents.
    #[error("not a valid manifest: {0}")]
    Syntax(String),
    /// A document of a kind the simulator reads is malformed.
    #[error("document {index} ({kind} {name}): {problem}")]
    Document {
        /// The document's position (0-based).
        index: usize,
        /// Its kind.
        kind: String,
        /// Its name (empty when missing).
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// A Deployment: the labels of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Namespace.
    pub namespace: String,
    /// Name (the version's name, `destination_workload`).
    pub name: String,
    /// The pod template's labels (what Services select).
    pub pod_labels: Labels,
}

/// A Service: which pods it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The label selector.
    pub selector: Labels,
}

/// An Istio Gateway: the hosts it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Hosts of its servers (`*` and `*.suffix` wildcards allowed).
    pub hosts: Vec<String>,
}

impl Gateway {
    /// Whether the gateway accepts requests for `host`.
    pub fn serves(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| {
            let h = h.rsplit('/').next().unwrap_or(h);
            h == "*"
                || h == host
                || h.strip_prefix('*')
                    .is_some_and(|suffix| host.ends_with(suffix))
        })
    }
}

/// One object read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A Deployment.
    Deployment(Deployment),
    /// A Service.
    Service(Service),
    /// An Istio Gateway.
    Gateway(Gateway),
    /// An iter8 Experiment.
    Experiment(Box<Experiment>),
    /// The `iter8config-metrics` ConfigMap.
    MetricsConfig(Box<MetricsConfig>),
    /// Anything else (kept by nobody; reported as applied, like `kubectl apply` does).
    Other {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
}

impl Object {
    /// `kind/name`, as `kubectl apply` reports it.
    pub fn describe(&self) -> String {
        match self {
            Object::Deployment(d) => format!("deployment.apps/{}", d.name),
            Object::Service(s) => format!("service/{}", s.name),
            Object::Gateway(g) => format!("gateway.networking.istio.io/{}", g.name),
            Object::Experiment(e) => format!("experiment.iter8.tools/{}", e.name()),
            Object::MetricsConfig(_) => format!("configmap/{CONFIGMAP_NAME}"),
            Object::Other { kind, name } => format!("{}/{name}", kind.to_lowercase()),
        }
    }
}

fn str_map(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), s))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads every document of a (multi-document) manifest; objects without a namespace get
/// `namespace` (as `kubectl apply -n` does).
pub fn parse_objects(text: &str, namespace: &str) -> Result<Vec<Object>, ManifestError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
    let mut out = Vec::new();
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let meta = doc.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(namespace)
            .to_string();
        let problem = |p: String| ManifestError::Document {
            index,
            kind: kind.clone(),
            name: name.clone(),
            problem: p,
        };
        if kind.is_empty() {
            return Err(problem("no kind".into()));
        }
        if name.is_empty() {
            return Err(problem("no metadata.name".into()));
        }
        let spec = doc.get("spec");
        let object = match kind.as_str() {
            "Deployment" => {
                let template_labels = spec
                    .and_then(|s| s.get("template"))
                    .and_then(|t| t.get("metadata"))
                    .and_then(|m| m.get("labels"));
                let pod_labels = str_map(template_labels);
                if pod_labels.is_empty() {
                    return Err(problem("spec.template.metadata.labels is empty".into()));
                }
                Object::Deployment(Deployment {
                    namespace: ns,
                    name,
                    pod_labels,
                })
            }
            "Service" => Object::Service(Service {
                namespace: ns,
                name,
                selector: str_map(spec.and_then(|s| s.get("selector"))),
            }),
            "Gateway" => {
                let hosts = spec
                    .and_then(|s| s.get("servers"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|srv| srv.get("hosts").and_then(Value::as_array))
                    .flatten()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect();
                Object::Gateway(Gateway {
                    namespace: ns,
                    name,
                    hosts,
                })
            }
            iter8_core::KIND => {
                let mut d =
                    manifest::parse_document(index, doc).map_err(|e| problem(e.to_string()))?;
                if !d.unknown_fields.is_empty() {
                    return Err(problem(format!(
                        "unknown field(s): {}",
                        d.unknown_fields.join(", ")
                    )));
                }
                d.experiment.metadata.namespace.get_or_insert(ns);
                Object::Experiment(Box::new(d.experiment))
            }
            "ConfigMap" if name == CONFIGMAP_NAME => {
                let data = doc
                    .get("data")
                    .cloned()
                    .map(serde_json::from_value::<BTreeMap<String, String>>)
                    .transpose()
                    .map_err(|e| problem(format!("data: {e}")))?
                    .unwrap_or_default();
                let config = MetricsConfig::from_data(&data).map_err(|e| problem(e.to_string()))?;
                Object::MetricsConfig(Box::new(config))
            }
            _ => Object::Other { kind, name },
        };
        out.push(object);
    }
    Ok(out)
}

/// The cluster's workloads, services and gateways.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    deployments: ByName<Deployment>,
    /// (namespace, label, value) -> names of the Deployments whose pods carry it.
    by_label: FxHashMap<(String, String, String), BTreeSet<String>>,
    services: ByName<Service>,
    gateways: ByName<Gateway>,
    generation: u64,
}

impl Cluster {
    /// Bumped on every change (traffic recomputes its routes when it moves).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Creates or replaces a Deployment.
    pub fn apply_deployment(&mut self, d: Deployment) {
        self.delete_deployment(&d.namespace, &d.name);
        for (k, v) in &d.pod_labels {
            self.by_label
                .entry((d.namespace.clone(), k.clone(), v.clone()))
                .or_default()
                .insert(d.name.clone());
        }
        let (ns, name) = (d.namespace.clone(), d.name.clone());
        put(&mut self.deployments, &ns, &name, d);
    }

    /// Creates or replaces a Service.
    pub fn apply_service(&mut self, s: Service) {
        self.generation += 1;
        let (ns, name) = (s.namespace.clone(), s.name.clone());
        put(&mut self.services, &ns, &name, s);
    }

    /// Creates or replaces a Gateway.
    pub fn apply_gateway(&mut self, g: Gateway) {
        self.generation += 1;
        let (ns, name) = (g.namespace.clone(), g.name.clone());
        put(&mut self.gateways, &ns, &name, g);
    }

    /// Deletes a Deployment; whether it existed.
    pub fn delete_deployment(&mut self, namespace: &str, name: &str) -> bool {
        self.generation += 1;
        let Some(old) = take(&mut self.deployments, namespace, name) else {
            return false;
        };
        for (k, v) in old.pod_labels {
            let label = (old.namespace.clone(), k, v);
            if let Some(names) = self.by_label.get_mut(&label) {
                names.remove(&old.name);
                if names.is_empty() {
                    self.by_label.remove(&label);
                }
            }
        }
        true
    }

    /// Deletes a Service; whether it existed.
    pub fn delete_service(&mut self, namespace: &str, name: &str) -> bool {
        self.generation += 1;
        take(&mut self.services, namespace, name).is_some()
    }

    /// A Deployment, if it exists.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<&Deployment> {
        find(&self.deployments, namespace, name)
    }

    /// A Service, if it exists.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        find(&self.services, namespace, name)
    }

    /// A Gateway referenced from `namespace` as `name` or `other-namespace/name`.
    pub fn gateway(&self, namespace: &str, reference: &str) -> Option<&Gateway> {
        let (ns, name) = reference.split_once('/').unwrap_or((namespace, reference));
        find(&self.gateways, ns, name)
    }

    /// Every Deployment, by namespace and name.
    pub fn deployments(&self) -> Vec<&Deployment> {
        let mut all: Vec<&Deployment> = self
            .deployments
            .values()
            .flat_map(FxHashMap::values)
            .collect();
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }

    /// The Deployments a Service selects (none for an empty selector), by name.
    pub fn selected(&self, service: &Service) -> Vec<&Deployment> {
        let Some((k, v)) = service.selector.iter().next() else {
            return Vec::new();
        };
        let label = (service.namespace.clone(), k.clone(), v.clone());
        self.by_label
            .get(&label)
            .into_iter()
            .flatten()
            .filter_map(|name| self.deployment(&service.namespace, name))
            .filter(|d| {
                service
                    .selector
                    .iter()
                    .all(|(k, v)| d.pod_labels.get(k) == Some(v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tutorial_manifests() {
        let text = include_str!("../../examples/bookinfo/bookinfo-tutorial.yaml");
        let objects = parse_objects(text, "bookinfo-iter8").unwrap();
        let mut c = Cluster::default();
        for o in objects {
            match o {
                Object::Deployment(d) => c.apply_deployment(d),
                Object::Service(s) => c.apply_service(s),
                _ => {}
            }
        }
        let reviews = c.service("bookinfo-iter8", "reviews").unwrap().clone();
        let selected: Vec<_> = c
            .selected(&reviews)
            .iter()
            .map(|d| d.name.clone())
            .collect();
        assert_eq!(selected, ["reviews-v2"]);
    }

    #[test]
    fn gateway_hosts_and_wildcards() {
        let g = Gateway {
            namespace: "ns".into(),
            name: "g".into(),
            hosts: vec!["*.example.com".into(), "a.dev".into()],
        };
        assert!(g.serves("x.example.com") && g.serves("a.dev") && !g.serves("b.dev"));
    }

    #[test]
    fn a_document_without_name_is_an_error() {
        let err = parse_objects("kind: Deployment\nmetadata: {}\n", "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 0 (Deployment ): no metadata.name"
        );
    }
}
