//! The adapter's errors: each names the verb, the object and what the API server said.

use iter8_core::ports::PortError;

/// A failure talking to the Kubernetes API or reading what it returned.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// An API call failed.
    #[error("{verb} {kind} {namespace}/{name}: {message}")]
    Api {
        /// `get`, `list`, `patch`, ...
        verb: &'static str,
        /// The object's kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name (or the label selector of a list).
        name: String,
        /// What the API server (or the connection) said.
        message: String,
        /// The underlying error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A value could not be converted to or from JSON.
    #[error("encoding {what}: {message}")]
    Json {
        /// What was being encoded.
        what: String,
        /// The serde error.
        message: String,
    },
    /// A value could not be written as YAML.
    #[error("writing {what} as YAML: {message}")]
    Yaml {
        /// What was being written.
        what: String,
        /// The serializer's error.
        message: String,
    },
    /// The metrics ConfigMap could not be found or read.
    #[error("{0}")]
    MetricsConfig(String),
    /// A watch feeding a reflector store has not completed its first list in time.
    #[error(
        "the operator's watch of {0} has not listed them within {secs} s (may it list and watch them?)",
        secs = crate::controller::SYNC_WAIT.as_secs()
    )]
    NotSynced(&'static str),
    /// The kubeconfig or in-cluster configuration could not be loaded.
    #[error("loading the Kubernetes client configuration: {0}")]
    Config(String),
}

impl KubeError {
    /// An API error for `verb` on `kind namespace/name`.
    pub fn api(
        verb: &'static str,
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
        source: kube::Error,
    ) -> KubeError {
        KubeError::Api {
            verb,
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            message: describe(&source),
            source: Box::new(source),
        }
    }

    /// Whether this is the API server's 409 Conflict (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        matches!(self, KubeError::Api { source, .. } if matches!(&**source, kube::Error::Api(s) if s.code == 409))
    }
}

/// A short description of a kube error: the API server's message when there is one.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} ({})", status.message, status.code)
        }
        other => other.to_string(),
    }
}

/// Whether a kube error is the API server's 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

impl From<KubeError> for PortError {
    fn from(e: KubeError) -> PortError {
        PortError::new(e.to_string())
    }
}
