//! How long the controller's watches wait after a watch error before they list again.
//!
//! kube-runtime's default (client-go's reflector: 0.8 s doubling to 30 s, reset only after two
//! minutes without a backoff) is shared by every watch the controller merges. A routine
//! `410 Gone` (the API server compacted the watch's resourceVersion) ends the Experiment,
//! Deployment and Service watches together, so three errors in a row stacked up to 10–20 s of
//! silence, during which a deleted target or a new candidate went unnoticed. Here the first
//! retry is quick, repeated failures still back off to a cap, and any event that arrives resets
//! the sequence (the stream wrapper calls `reset` on every successful item).

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Exponential backoff for the controller's watches: `first`, doubling, capped at `max`.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl WatchBackoff {
    /// 100 ms doubling to 10 s: a relist after a compaction is immediate in practice, and an
    /// API server that keeps failing is asked at most every 10 s.
    pub fn new() -> Self {
        Self::with(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// A backoff from `first` doubling up to `max` (`max` below `first` is taken as `first`).
    pub fn with(first: Duration, max: Duration) -> Self {
        let max = max.max(first);
        WatchBackoff {
            first,
            max,
            next: first,
        }
    }
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 2).min(self.max);
        // Never gives up: a controller that stops watching would silently stop working.
        Some(now)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_delay_up_to_the_cap_and_never_gives_up() {
        let delays: Vec<_> = WatchBackoff::new().take(10).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn reset_starts_again_from_the_first_delay() {
        let mut b = WatchBackoff::new();
        b.next();
        b.next();
        b.next();
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn a_cap_below_the_first_delay_is_the_first_delay() {
        let mut b = WatchBackoff::with(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.next(), Some(Duration::from_secs(2)));
        assert_eq!(b.next(), Some(Duration::from_secs(2)));
    }
}
