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

use backon::ExponentialBuilder;
use kube::runtime::watcher::ExponentialBackoff;

/// The first pause after a watch error: a relist after a compaction is immediate in practice.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest pause: an API server that keeps failing is asked at most every 10 s.
pub const MAX: Duration = Duration::from_secs(10);

/// The schedule of the pauses (backon's exponential backoff, the one kube-runtime uses too):
/// [`FIRST`], doubling, capped at [`MAX`], no jitter, never giving up (a controller that stops
/// watching would silently stop working).
pub fn schedule() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(MAX)
        .with_factor(2.0)
        .without_max_times()
}

/// The controller's watch backoff: [`schedule`], restarted by kube-runtime whenever a watch
/// delivers an event.
pub fn watch_backoff() -> ExponentialBackoff {
    ExponentialBackoff::from(schedule())
}

#[cfg(test)]
mod tests {
    use kube::runtime::utils::Backoff as _;

    use super::*;

    #[test]
    fn doubles_from_the_first_delay_up_to_the_cap_and_never_gives_up() {
        let ms: Vec<u128> = watch_backoff().take(10).map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn reset_starts_again_from_the_first_delay() {
        let mut b = watch_backoff();
        b.next();
        b.next();
        b.next();
        b.reset();
        assert_eq!(b.next(), Some(FIRST));
    }
}
