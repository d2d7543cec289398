//! The install bundle `iter8 install` prints: the `iter8` namespace, the CRD, the operator's
//! ServiceAccount and least-privilege RBAC, the operator Deployment (non-root, read-only root
//! filesystem, probes, resource requests), its metrics Service, and the stock metrics ConfigMap.

use iter8_core::metrics_config::{CONFIGMAP_NAME, STOCK_TELEMETRY_V1, STOCK_TELEMETRY_V2};
use serde_json::{Value, json};

use crate::crd;
use crate::error::KubeError;

/// The operator's name (ServiceAccount, Deployment, ClusterRole, Lease, ...).
pub const OPERATOR_NAME: &str = "iter8-controller";
/// The port of `/metrics`, `/healthz` and `/readyz`.
pub const HTTP_PORT: u16 = 8080;

/// Which Istio telemetry the stock metrics ConfigMap queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Telemetry {
    /// Mixer telemetry (Istio before 1.5).
    V1,
    /// Telemetry v2 (Istio 1.5 and later).
    #[default]
    V2,
}

/// What the bundle is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallOptions {
    /// The operator's namespace (also where the metrics ConfigMap and the Lease live).
    pub namespace: String,
    /// The operator's container image.
    pub image: String,
    /// The stock metrics configuration to install.
    pub telemetry: Telemetry,
    /// Prometheus' URL, passed to the operator.
    pub prometheus_url: String,
    /// Operator replicas (leader election keeps one active).
    pub replicas: i32,
    /// Let experiments name targets in other namespaces: the operator runs with
    /// `--allow-cross-namespace` and the bundle has no admission policy against it.
    pub allow_cross_namespace: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: "iter8".to_string(),
            // The reference scripts/build-image.sh tags (buildah names local images localhost/...).
            image: format!("localhost/iter8-rs/iter8:{}", env!("CARGO_PKG_VERSION")),
            telemetry: Telemetry::V2,
            prometheus_url: "http://prometheus.istio-system:9090".to_string(),
            replicas: 1,
            allow_cross_namespace: false,
        }
    }
}

fn labels() -> Value {
    json!({
        "app.kubernetes.io/name": OPERATOR_NAME,
        "app.kubernetes.io/part-of": "iter8",
    })
}

/// The rules of the operator's ClusterRole: only what it calls.
pub fn cluster_rules() -> Value {
    json!([
        {"apiGroups": ["iter8.tools"], "resources": ["experiments"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["iter8.tools"], "resources": ["experiments/status"], "verbs": ["get", "patch"]},
        {"apiGroups": ["iter8.tools"], "resources": ["experiments/finalizers"], "verbs": ["update"]},
        // Targets: watched, and the loser deleted on `cleanup: delete`.
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "delete"]},
        // Only the metrics configuration: read from a store fed by a watch of that one name.
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONFIGMAP_NAME], "verbs": ["get", "list", "watch"]},
        // Routing rules: watched, server-side applied, deleted on cleanup.
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices", "destinationrules"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        // Gateway API: the user's HTTPRoute named by spec.routingReference, read and applied.
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

/// The name of the admission policy (and its binding) that keeps experiments' targets in
/// their own namespace.
pub const NAMESPACE_POLICY: &str = "iter8-experiment-namespace";

/// The namespace boundary at admission: an Experiment may name only its own namespace in
/// `spec.targetService.namespace` (a ValidatingAdmissionPolicy and its binding, GA since
/// Kubernetes 1.30).
pub fn namespace_policy() -> [Value; 2] {
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": NAMESPACE_POLICY, "labels": labels()},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [{
                        "apiGroups": [crd::GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [crd::PLURAL],
                    }],
                },
                "validations": [{
                    "expression": "!has(object.spec.targetService) || !has(object.spec.targetService.namespace) || object.spec.targetService.namespace == object.metadata.namespace",
                    "messageExpression": "'spec.targetService.namespace: must be the Experiment namespace ' + object.metadata.namespace + ', not ' + object.spec.targetService.namespace + ' (iter8 runs without --allow-cross-namespace)'",
                    "reason": "Invalid",
                }],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": NAMESPACE_POLICY, "labels": labels()},
            "spec": {
                "policyName": NAMESPACE_POLICY,
                "validationActions": ["Deny"],
            },
        }),
    ]
}

/// Every object of the bundle, in apply order.
pub fn objects(options: &InstallOptions) -> Result<Vec<Value>, KubeError> {
    let ns = options.namespace.as_str();
    let json_err = |what: &str, e: String| KubeError::Json {
        what: what.to_string(),
        message: e,
    };
    let crd = serde_json::to_value(crd::crd()).map_err(|e| json_err("the CRD", e.to_string()))?;
    let stock = match options.telemetry {
        Telemetry::V1 => STOCK_TELEMETRY_V1,
        Telemetry::V2 => STOCK_TELEMETRY_V2,
    };
    let mut metrics: Value = serde_saphyr::from_str(stock)
        .map_err(|e| json_err("the stock metrics ConfigMap", e.to_string()))?;
    metrics["metadata"]["namespace"] = json!(ns);
    metrics["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": "iter8"});
    let selector = json!({"app.kubernetes.io/name": OPERATOR_NAME});
    let mut args = vec![
        "operator".to_string(),
        format!("--metrics-namespace={ns}"),
        format!("--prometheus-url={}", options.prometheus_url),
        "--leader-elect".to_string(),
        "--log-format=json".to_string(),
        format!("--listen=0.0.0.0:{HTTP_PORT}"),
    ];
    if options.allow_cross_namespace {
        args.push("--allow-cross-namespace".to_string());
    }
    let mut objects = vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": "iter8", "istio-injection": "disabled"}},
        }),
        crd,
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": OPERATOR_NAME, "namespace": ns, "labels": labels()},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": OPERATOR_NAME, "labels": labels()},
            "rules": cluster_rules(),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR_NAME, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": ns}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": format!("{OPERATOR_NAME}-leader-election"), "namespace": ns, "labels": labels()},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]},
                // The notifiers' ConfigMap is followed live (a watch by name): that one only.
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["iter8config-notifiers"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": format!("{OPERATOR_NAME}-leader-election"), "namespace": ns, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{OPERATOR_NAME}-leader-election")},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": ns}],
        }),
        metrics,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": OPERATOR_NAME, "namespace": ns, "labels": labels()},
            "spec": {
                "replicas": options.replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": labels(),
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": HTTP_PORT.to_string(),
                            "prometheus.io/path": "/metrics",
                            "sidecar.istio.io/inject": "false",
                        },
                    },
                    "spec": {
                        "serviceAccountName": OPERATOR_NAME,
                        "automountServiceAccountToken": true,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65532,
                            "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "operator",
                            "image": options.image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": args,
                            "env": [
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            ],
                            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "initialDelaySeconds": 5,
                                "periodSeconds": 10,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": format!("{OPERATOR_NAME}-metrics"), "namespace": ns, "labels": labels()},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http-metrics", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
    ];
    if !options.allow_cross_namespace {
        // Right after the CRD: experiments are checked from the first one created.
        objects.splice(2..2, namespace_policy());
    }
    Ok(objects)
}

/// The bundle as multi-document YAML.
pub fn bundle_yaml(options: &InstallOptions) -> Result<String, KubeError> {
    let mut out = String::new();
    for obj in objects(options)? {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&obj).map_err(|e| KubeError::Yaml {
            what: format!("the {} of the install bundle", obj["kind"]),
            message: e.to_string(),
        })?);
    }
    Ok(out)
}
