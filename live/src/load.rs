//! A built-in load generator: a steady request rate to a 127.0.0.1 URL, open loop (a slow
//! version does not slow the rate down), bounded in time and in count.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::{JoinHandle, JoinSet};

/// Why load could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The URL is not an http URL on 127.0.0.1 (or localhost).
    #[error("load is only sent to http://127.0.0.1 (or localhost); refusing `{0}`")]
    NotLoopback(String),
    /// The rate is not a positive number of requests per second (at most 1000).
    #[error("rate must be between 0 and 1000 requests per second, got {0}")]
    BadRate(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// The URL (http, 127.0.0.1 or localhost only).
    pub url: String,
    /// Requests per second.
    pub rate_per_sec: f64,
    /// Stop after this long.
    pub max_duration: Duration,
    /// Stop after this many requests.
    pub max_requests: u64,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Requests in flight at most (more are skipped and counted as dropped).
    pub max_in_flight: usize,
}

impl LoadSpec {
    /// `rate_per_sec` requests per second to `url` for at most `max_duration`.
    pub fn new(url: impl Into<String>, rate_per_sec: f64, max_duration: Duration) -> Self {
        let max_requests = (rate_per_sec.max(0.0) * max_duration.as_secs_f64()).ceil() as u64 + 1;
        LoadSpec {
            url: url.into(),
            rate_per_sec,
            max_duration,
            max_requests,
            timeout: Duration::from_secs(10),
            max_in_flight: 1000,
        }
    }
}

/// What happened so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadStats {
    /// Requests sent.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 5xx answers.
    pub errors_5xx: u64,
    /// Other answers (1xx, 3xx, 4xx).
    pub other: u64,
    /// Requests that got no answer (connection refused, timeout).
    pub failed: u64,
    /// Requests skipped because too many were in flight.
    pub dropped: u64,
    /// When the first 5xx answer arrived.
    pub first_5xx: Option<Instant>,
}

/// A running load generator; stops when dropped.
pub struct LoadGenerator {
    stats: Arc<Mutex<LoadStats>>,
    task: JoinHandle<()>,
}

fn check_url(url: &str) -> Result<reqwest::Url, LoadError> {
    let refuse = || LoadError::NotLoopback(url.to_string());
    let parsed = reqwest::Url::parse(url).map_err(|_| refuse())?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "http" || !loopback {
        return Err(refuse());
    }
    Ok(parsed)
}

impl LoadGenerator {
    /// Starts sending (inside a tokio runtime).
    pub fn start(spec: LoadSpec) -> Result<Self, LoadError> {
        let url = check_url(&spec.url)?;
        if !(spec.rate_per_sec > 0.0 && spec.rate_per_sec <= 1000.0) {
            return Err(LoadError::BadRate(spec.rate_per_sec.to_string()));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(spec.timeout)
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| LoadError::Client(e.to_string()))?;
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let shared = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let period = Duration::from_secs_f64(1.0 / spec.rate_per_sec);
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let started = Instant::now();
            let mut in_flight = JoinSet::new();
            let mut sent = 0u64;
            while sent < spec.max_requests && started.elapsed() < spec.max_duration {
                ticks.tick().await;
                while in_flight.try_join_next().is_some() {}
                let update = |f: &dyn Fn(&mut LoadStats)| {
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    f(&mut s);
                };
                if in_flight.len() >= spec.max_in_flight {
                    update(&|s| s.dropped += 1);
                    continue;
                }
                sent += 1;
                update(&|s| s.sent += 1);
                let (client, url, shared) = (client.clone(), url.clone(), Arc::clone(&shared));
                in_flight.spawn(async move {
                    let answer = client.get(url).send().await;
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    match answer {
                        Ok(r) if r.status().is_success() => s.ok += 1,
                        Ok(r) if r.status().is_server_error() => {
                            s.errors_5xx += 1;
                            s.first_5xx.get_or_insert_with(Instant::now);
                        }
                        Ok(_) => s.other += 1,
                        Err(_) => s.failed += 1,
                    }
                });
            }
            // Let the last requests finish (each is bounded by the client's timeout).
            while in_flight.join_next().await.is_some() {}
        });
        Ok(LoadGenerator { stats, task })
    }

    /// The counts so far.
    pub fn stats(&self) -> LoadStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets when the first 5xx arrived (to time the next one).
    pub fn reset_first_5xx(&self) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_5xx = None;
    }

    /// Whether it has stopped sending (time or count reached).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops sending now.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_is_accepted() {
        assert!(check_url("http://127.0.0.1:9080/reviews").is_ok());
        assert!(check_url("http://localhost:9080/").is_ok());
        assert!(check_url("http://10.0.0.1:9080/").is_err());
        assert!(check_url("http://example.com/").is_err());
        assert!(check_url("https://127.0.0.1/").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rate_and_the_bounds_hold() {
        let server = iter8_example_reviews::ReviewsServer::start(
            "reviews-v5",
            iter8_example_reviews::Behavior::of("v5").unwrap(),
            0,
        )
        .await
        .unwrap();
        let spec = LoadSpec::new(
            format!("http://{}/reviews/0", server.addr()),
            50.0,
            Duration::from_secs(1),
        );
        let load = LoadGenerator::start(spec).unwrap();
        let started = Instant::now();
        while !load.is_finished() && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = load.stats();
        assert!(load.is_finished());
        assert!((45..=52).contains(&s.sent), "{s:?}");
        assert_eq!(s.errors_5xx, s.sent, "{s:?}");
        assert!(s.first_5xx.is_some());
    }
}
