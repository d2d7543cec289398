//! Starts a real Prometheus (`prometheus` 2.42 from Debian) on a free 127.0.0.1 port, over TSDB
//! blocks built by `promtool tsdb create-blocks-from openmetrics`, and stops it by PID on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus with its own data directory; stopped (by PID) when dropped.
pub struct TestPrometheus {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    dir: TempDir,
}

/// A directory under the system temp dir, removed on drop (std only, so the binary's tests can
/// include this file too).
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory.
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "iter8-prometheus-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

impl TestPrometheus {
    /// Builds blocks from `openmetrics` and starts Prometheus over them; waits for `/-/ready`.
    pub fn start(openmetrics: &str) -> TestPrometheus {
        let mut dir = TempDir::new();
        let input = dir.path().join("series.om");
        std::fs::write(&input, openmetrics).expect("write series");
        let data = dir.path().join("data");
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .expect("promtool (apt-get install prometheus; see scripts/install-test-deps.sh)");
        assert!(
            out.status.success(),
            "promtool failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
        )
        .expect("write config");
        let log = dir.path().join("prometheus.log");
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut p = TestPrometheus {
                child: Some(spawn(&config, &data, port, &log)),
                port,
                log: log.clone(),
                dir,
            };
            if p.wait_ready(Duration::from_secs(60)) {
                return p;
            }
            p.stop();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            // Take the directory back for the next try (the port may have been taken).
            dir = std::mem::replace(&mut p.dir, TempDir::new());
        }
        panic!("Prometheus did not become ready; log:\n{last_log}");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if ready(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Prometheus' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the process (SIGKILL to its PID) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(config: &Path, data: &Path, port: u16, log: &Path) -> Child {
    let log_file = std::fs::File::create(log).expect("log file");
    let err_file = log_file.try_clone().expect("log file");
    Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(err_file))
        .spawn()
        .expect("start prometheus (apt-get install prometheus)")
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
