//! Test support for running iter8 against a real Kubernetes control plane.
//!
//! - [`ControlPlane`]: etcd and kube-apiserver on 127.0.0.1, started by
//!   `scripts/control-plane.sh` (one per test binary through [`ControlPlane::shared`]), stopped
//!   by their PIDs when the test binary exits; `kubectl` at the pinned release; clients as the
//!   cluster admin or as a ServiceAccount (a real token from the TokenRequest API, so requests
//!   go through the RBAC authorizer as that account).
//! - [`object`], [`objects`]: any kind as JSON through a client; [`History`]: every version of
//!   one object, recorded by a watch opened before it changes (a real API server keeps no
//!   history to replay afterwards).
//! - [`FaultProxy`]: the API faults a healthy server does not make (500, 429, 403, slow
//!   answers, dropped watches).
//! - [`iterations`], [`assert_iterations_once`]: the iterations a recorded experiment went
//!   through, and the check that each ran once, an interval apart; [`http_get`]: a GET on an
//!   operator's endpoints.
//! - [`FakePrometheus`]: iter8-test-support's one fake Prometheus, re-exported;
//!   [`FakePrometheus::per_version`] answers the stock and extended Istio telemetry-v2 queries
//!   with values per version (`destination_workload`), so an operator's analysis sees each
//!   tutorial version behave as the tutorial describes it. Prometheus itself is tested for real
//!   elsewhere (adapters/prometheus); here it stands in because no pods run and so nothing is
//!   scraped.

mod http;
mod iterations;
mod objects;
mod proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use http::http_get;
pub use iter8_test_support::{Behaviour, FakePrometheus, tutorial_versions};
pub use iterations::{assert_iterations_once, iterations, seconds_between};
pub use objects::{History, object, objects};
pub use proxy::FaultProxy;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running etcd + kube-apiserver.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    owned_dir: bool,
}

/// The control planes of this test binary by name, stopped when it exits.
static SHARED: Mutex<BTreeMap<&'static str, &'static ControlPlane>> = Mutex::new(BTreeMap::new());

extern "C" fn stop_shared_at_exit() {
    let all = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for cp in all.values() {
        cp.stop();
        if std::env::var_os("ITER8_KEEP_CONTROL_PLANE_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&cp.dir);
        }
    }
}

impl ControlPlane {
    /// The control plane of this test binary: started at the first call, stopped when the
    /// process exits.
    pub fn shared() -> &'static ControlPlane {
        Self::shared_named("default")
    }

    /// Another control plane of this test binary, for tests that need the cluster set up
    /// differently from the others (e.g. another CustomResourceDefinition): started at the
    /// first call with this `name`, stopped when the process exits.
    pub fn shared_named(name: &'static str) -> &'static ControlPlane {
        // Held while starting: a second caller waits for the same control plane.
        let mut all = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cp) = all.get(name) {
            return cp;
        }
        let cp = ControlPlane::start().unwrap_or_else(|e| panic!("control plane {name}: {e}"));
        if all.is_empty() {
            // SAFETY: registers a plain `extern "C" fn` with no captured state.
            unsafe { libc::atexit(stop_shared_at_exit) };
        }
        // Lives until the process exits, when `stop_shared_at_exit` stops it.
        let cp: &'static ControlPlane = Box::leak(Box::new(cp));
        all.insert(name, cp);
        cp
    }

    /// Starts a control plane of its own in a new temporary folder (stopped on drop).
    pub fn start() -> Result<ControlPlane, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "iter8-control-plane-{}-{nanos}",
            std::process::id()
        ));
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/control-plane.sh"))
            .arg("up")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running scripts/control-plane.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/control-plane.sh up failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!(
            "control plane at {} up in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(ControlPlane {
            dir,
            owned_dir: true,
        })
    }

    /// The admin kubeconfig (group `system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The folder holding the kubeconfig, the certificates, the logs and the PID files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The API server's URL (`https://127.0.0.1:<port>`).
    pub fn server(&self) -> String {
        let text = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap_or_default()
            .to_string()
    }

    /// The folder of the pinned etcd, kube-apiserver and kubectl.
    pub fn bin_dir(&self) -> PathBuf {
        let env = std::fs::read_to_string(self.dir.join("env")).unwrap_or_default();
        env.lines()
            .find_map(|l| l.strip_prefix("export PATH="))
            .and_then(|p| p.split(':').next())
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Runs the pinned `kubectl` as the admin with `args`, feeding `stdin`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.kubectl_as(&self.kubeconfig(), args, stdin)
    }

    /// Runs the pinned `kubectl` with another kubeconfig.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new(self.bin_dir().join("kubectl"))
            .args(args)
            .arg("--request-timeout=20s")
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // Written from a thread of its own while its output is read: a large manifest would
        // otherwise fill kubectl's output pipe before kubectl has read all of it, and both
        // would wait for each other.
        let text = stdin.unwrap_or_default().to_string();
        let writer = std::thread::spawn(move || pipe.write_all(text.as_bytes()));
        let output = child.wait_with_output().expect("kubectl runs");
        writer
            .join()
            .expect("the stdin writer does not panic")
            .expect("kubectl reads stdin");
        output
    }

    /// `kubectl <args>` that must succeed; returns its standard output.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply --server-side` of a manifest (as a user would apply it).
    pub fn apply(&self, manifest: &str) -> String {
        self.kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=kubectl",
                "-f",
                "-",
            ],
            Some(manifest),
        )
    }

    /// Applies a manifest and waits until each CustomResourceDefinition in it is Established.
    pub fn apply_crds(&self, manifest: &str) {
        let applied = self.apply(manifest);
        for line in applied.lines() {
            if let Some(name) = line.strip_prefix("customresourcedefinition.apiextensions.k8s.io/")
            {
                let name = name.split_whitespace().next().unwrap_or(name);
                self.kubectl_ok(
                    &[
                        "wait",
                        "--for=condition=Established",
                        "--timeout=30s",
                        &format!("crd/{name}"),
                    ],
                    None,
                );
            }
        }
    }

    /// A client as the cluster admin.
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig()).await
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name` with a token from
    /// the TokenRequest API, written into this control plane's folder.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.kubectl_ok(
            &["create", "token", name, "-n", namespace, "--duration=6h"],
            None,
        );
        let path = self.dir.join(format!("kubeconfig-{namespace}-{name}"));
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: iter8-test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: iter8-test\n    user: {name}\ncurrent-context: {name}\n",
            self.server(),
            self.dir.join("pki/ca.crt").display(),
            token.trim()
        );
        std::fs::write(&path, config).expect("kubeconfig written");
        path
    }

    /// The CA certificate (PEM) that signs the API server's serving certificate.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("pki/ca.crt")).expect("the CA certificate")
    }

    /// A kubeconfig for ServiceAccount `namespace/name` that reaches the API server through
    /// `server` (e.g. a [`FaultProxy`] on plain HTTP).
    pub fn service_account_kubeconfig_via(
        &self,
        namespace: &str,
        name: &str,
        server: &str,
    ) -> PathBuf {
        let token = self.kubectl_ok(
            &["create", "token", name, "-n", namespace, "--duration=6h"],
            None,
        );
        let path = self
            .dir
            .join(format!("kubeconfig-{namespace}-{name}-via-proxy"));
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: {server}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: proxy\n    user: {name}\ncurrent-context: {name}\n",
            token.trim()
        );
        std::fs::write(&path, config).expect("kubeconfig written");
        path
    }

    /// Stops etcd and kube-apiserver by their PIDs.
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/control-plane.sh"))
            .arg("down")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        if self.owned_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the `iter8` binary at `binary` with `args` and returns its standard output; panics with
/// its standard error if it fails (the tests' and benchmarks' set-up: `iter8 install`, `iter8
/// crd`, ...).
pub fn run_iter8(binary: &Path, args: &[&str]) -> String {
    let out = Command::new(binary)
        .args(args)
        .output()
        .expect("the iter8 binary runs");
    assert!(
        out.status.success(),
        "iter8 {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    // kube is built with ring only; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig reads");
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client builds")
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
