//! The install bundle: what it holds, least-privilege RBAC, a hardened Deployment, and
//! `kubernetes-validate --strict` (offline schema validation) on every object.

use std::process::Command;

use iter8_kubernetes::install::{self, InstallOptions, Telemetry};
use serde_json::Value;

fn objects(telemetry: Telemetry) -> Vec<Value> {
    let options = InstallOptions {
        telemetry,
        ..InstallOptions::default()
    };
    let yaml = install::bundle_yaml(&options).unwrap();
    serde_saphyr::from_multiple::<Value>(&yaml).unwrap()
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_bundle_holds_everything_in_apply_order() {
    let objs = objects(Telemetry::V2);
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CustomResourceDefinition",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "Deployment",
            "Service"
        ]
    );
    let cm = kind(&objs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "iter8config-metrics");
    assert_eq!(cm["metadata"]["namespace"], "iter8");
    let config =
        iter8_core::MetricsConfig::from_configmap_yaml(&serde_saphyr::to_string(cm).unwrap())
            .unwrap();
    assert_eq!(config, iter8_core::MetricsConfig::stock_telemetry_v2());
    let v1 = objects(Telemetry::V1);
    let config = iter8_core::MetricsConfig::from_configmap_yaml(
        &serde_saphyr::to_string(kind(&v1, "ConfigMap")).unwrap(),
    )
    .unwrap();
    assert_eq!(config, iter8_core::MetricsConfig::stock_telemetry_v1());
}

#[test]
fn rbac_grants_only_what_the_operator_uses() {
    let objs = objects(Telemetry::V2);
    let mut grants: Vec<String> = Vec::new();
    for role in ["ClusterRole", "Role"] {
        for rule in kind(&objs, role)["rules"].as_array().unwrap() {
            // A rule limited to named objects grants nothing else: checked below.
            if rule.get("resourceNames").is_some() {
                continue;
            }
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        // A rule limited to named objects says so: `... of name,name`.
                        let names = rule["resourceNames"].as_array().map_or(String::new(), |n| {
                            let n: Vec<&str> = n.iter().filter_map(|v| v.as_str()).collect();
                            format!(" of {}", n.join(","))
                        });
                        grants.push(format!(
                            "{}/{} {}{names}",
                            group.as_str().unwrap(),
                            resource.as_str().unwrap(),
                            verb.as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    for needed in [
        "iter8.tools/experiments watch",
        "iter8.tools/experiments/status patch",
        "iter8.tools/experiments/finalizers update",
        "apps/deployments watch",
        "/services watch",
        "networking.istio.io/virtualservices watch",
        "networking.istio.io/virtualservices patch",
        "networking.istio.io/destinationrules patch",
        "/events create",
        "/events patch",
        "coordination.k8s.io/leases patch",
    ] {
        assert!(grants.iter().any(|g| g == needed), "{needed}: {grants:#?}");
    }
    for forbidden in ["*", "/secrets", "/pods", "escalate", "bind", "impersonate"] {
        assert!(
            !grants.iter().any(|g| g.contains(forbidden)),
            "{forbidden}: {grants:#?}"
        );
    }
    // Listing and watching ConfigMaps only for the notifiers' one, in the operator's namespace.
    let named: Vec<&serde_json::Value> = kind(&objs, "Role")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("resourceNames").is_some())
        .collect();
    assert_eq!(named.len(), 1, "{named:#?}");
    assert_eq!(named[0]["resources"], serde_json::json!(["configmaps"]));
    assert_eq!(
        named[0]["resourceNames"],
        serde_json::json!(["iter8config-notifiers"])
    );
    // ConfigMaps elsewhere: only the metrics configuration, read by name.
    let metrics: Vec<&serde_json::Value> = kind(&objs, "ClusterRole")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resources"] == serde_json::json!(["configmaps"]))
        .collect();
    assert_eq!(metrics.len(), 1, "{metrics:#?}");
    assert_eq!(
        metrics[0]["resourceNames"],
        serde_json::json!(["iter8config-metrics"])
    );
    assert_eq!(
        metrics[0]["verbs"],
        serde_json::json!(["get", "list", "watch"])
    );
    // Leases only in the operator's namespace.
    assert!(
        !kind(&objs, "ClusterRole")["rules"]
            .to_string()
            .contains("leases")
    );
}

#[test]
fn the_deployment_is_hardened_and_probed() {
    let objs = objects(Telemetry::V2);
    let pod = &kind(&objs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(c["args"][0], "operator");
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--leader-elect")
    );
}

/// `kubernetes-validate --strict` on each object (offline; the CRD is validated as a
/// CustomResourceDefinition, which is a built-in kind).
#[test]
fn kubernetes_validate_strict_accepts_the_bundle() {
    let probe = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "kubernetes-validate is not installed: pip install kubernetes-validate"
    );
    for telemetry in [Telemetry::V1, Telemetry::V2] {
        let options = InstallOptions {
            telemetry,
            ..InstallOptions::default()
        };
        let dir = std::env::temp_dir().join(format!(
            "iter8-install-{}-{:?}",
            std::process::id(),
            telemetry
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bundle.yaml");
        std::fs::write(&path, install::bundle_yaml(&options).unwrap()).unwrap();
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "-k", "1.33.0"])
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
    }
}
