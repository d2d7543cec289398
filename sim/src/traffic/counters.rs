//! What each version's series counts, as Istio's sidecars count it: per second, the requests,
//! the 5xx answers, the latency sum and the latency histogram, by the time a request completes.

use rustc_hash::FxHashMap;

use iter8_core::measurement::VersionTags;

use crate::clock::SimTime;

/// Width of a counting bucket, in milliseconds.
pub const BUCKET_MS: i64 = 1000;

/// Upper bounds (ms) of Istio's default latency histogram buckets (telemetry v2,
/// `istio_request_duration_milliseconds_bucket`); a final `+Inf` bucket follows.
pub const LATENCY_BOUNDS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Number of histogram buckets, `+Inf` included.
pub const HISTOGRAM_LEN: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The histogram bucket of a latency.
fn latency_bucket(latency_ms: f64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|bound| *bound < latency_ms)
}

/// The second (counting bucket) in which a request completing at `t_ms` counts.
fn second_of(t_ms: f64) -> i64 {
    // Virtual time starts at 0 and latencies are never negative, so rounding towards zero
    // (what `as` does) is the floor (without calling libm's `floor` for every request).
    debug_assert!(t_ms >= 0.0, "negative time {t_ms}");
    (t_ms / BUCKET_MS as f64) as i64
}

/// A histogram of one second, packed in 6 bytes: up to three `(bucket, count)` cells of 16
/// bits (5 for the bucket, 11 for the count). A version's latencies rarely spread over more
/// buckets in one second, nor count over 2047 in one; past that, the series keeps the full
/// histogram of that second aside. Packing keeps the fleet benchmark's millions of seconds
/// in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PackedHistogram([u16; 3]);

/// Marks a second whose histogram is kept aside (no cell has bucket 31).
const SPILLED: u16 = u16::MAX;
const COUNT_BITS: u32 = 11;
const COUNT_MASK: u16 = (1 << COUNT_BITS) - 1;

impl PackedHistogram {
    /// Counts one latency in bucket `le`; whether it fit (otherwise the caller spills).
    fn add(&mut self, le: usize) -> bool {
        if self.spilled() {
            return false;
        }
        for cell in &mut self.0 {
            if *cell == 0 {
                *cell = ((le as u16) << COUNT_BITS) | 1;
                return true;
            }
            if (*cell >> COUNT_BITS) as usize == le && *cell & COUNT_MASK < COUNT_MASK {
                *cell += 1;
                return true;
            }
        }
        false
    }

    fn spilled(&self) -> bool {
        self.0[0] == SPILLED
    }

    /// The counts, bucket by bucket (not for a spilled second).
    fn cells(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.0
            .iter()
            .take_while(|&&c| c != 0 && c != SPILLED)
            .map(|c| ((c >> COUNT_BITS) as usize, u64::from(c & COUNT_MASK)))
    }
}

/// The counters of one version over one second (16 bytes: the fleet benchmark holds millions;
/// the request count is the histogram's).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Second {
    latency_sum_ms: f64,
    errors: u16,
    histogram: PackedHistogram,
}

/// The counts of a second that outgrew [`Second`] (more than three histogram buckets, 2,047
/// requests in one, or 65,535 errors), kept whole, aside.
#[derive(Debug, Clone, Default)]
struct FullSecond {
    errors: u64,
    histogram: [u64; HISTOGRAM_LEN],
}

/// Counters summed over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    /// Requests completed.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Latency sum (ms).
    pub latency_sum_ms: f64,
    /// Latency histogram (not cumulative), `+Inf` last.
    pub histogram: [u64; HISTOGRAM_LEN],
}

impl Totals {
    /// Adds another window's counters.
    pub fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency_sum_ms += other.latency_sum_ms;
        for (t, h) in self.histogram.iter_mut().zip(&other.histogram) {
            *t += h;
        }
    }
}

/// The series of one version of one service: the counters Istio would export for it.
#[derive(Debug, Clone)]
pub struct Series {
    /// The namespace (`destination_workload_namespace`, `destination_service_namespace`).
    pub namespace: String,
    /// The Deployment (`destination_workload`).
    pub workload: String,
    /// The Service (`destination_service_name`).
    pub service: String,
    /// The second of `seconds[0]`.
    first_second: i64,
    seconds: Vec<Second>,
    /// The seconds that outgrew [`Second`], by index.
    spilled: FxHashMap<usize, FullSecond>,
    first_request_ms: f64,
    first_error_ms: f64,
}

impl Series {
    /// An empty series whose first second is the one of `at_ms` (earlier requests count in it).
    pub(crate) fn new(namespace: &str, workload: &str, service: &str, at_ms: f64) -> Self {
        Series {
            namespace: namespace.to_string(),
            workload: workload.to_string(),
            service: service.to_string(),
            first_second: second_of(at_ms),
            seconds: Vec::new(),
            spilled: FxHashMap::default(),
            first_request_ms: f64::INFINITY,
            first_error_ms: f64::INFINITY,
        }
    }

    /// Counts a request completing at `done_ms`.
    pub(crate) fn record(&mut self, done_ms: f64, latency_ms: f64, error: bool) {
        let i = (second_of(done_ms) - self.first_second).max(0) as usize;
        if i >= self.seconds.len() {
            self.seconds.resize(i + 1, Second::default());
        }
        let second = &mut self.seconds[i];
        second.latency_sum_ms += latency_ms;
        let le = latency_bucket(latency_ms);
        let packed = !second.histogram.spilled()
            && (!error || second.errors < u16::MAX)
            && second.histogram.add(le);
        if packed {
            second.errors += u16::from(error);
        } else {
            let full = self.spilled.entry(i).or_default();
            if !second.histogram.spilled() {
                full.errors = u64::from(second.errors);
                for (bucket, count) in second.histogram.cells() {
                    full.histogram[bucket] += count;
                }
                second.errors = 0;
                second.histogram.0 = [SPILLED, 0, 0];
            }
            full.errors += u64::from(error);
            full.histogram[le] += 1;
        }
        self.first_request_ms = self.first_request_ms.min(done_ms);
        if error {
            self.first_error_ms = self.first_error_ms.min(done_ms);
        }
    }

    /// Whether the series exists at `t` (a request completed before it).
    pub fn exists_at(&self, t: SimTime) -> bool {
        self.first_request_ms < t.millis() as f64
    }

    /// Whether its 5xx series exists at `t` (a 5xx completed before it).
    pub fn errors_exist_at(&self, t: SimTime) -> bool {
        self.first_error_ms < t.millis() as f64
    }

    /// Counters of the requests completed in `[from, to)` (second-aligned: a second counts
    /// when it starts inside the window).
    pub fn totals(&self, from: SimTime, to: SimTime) -> Totals {
        let index = |t: SimTime| {
            let second =
                t.millis().div_euclid(BUCKET_MS) + i64::from(t.millis().rem_euclid(BUCKET_MS) != 0);
            (second - self.first_second).clamp(0, self.seconds.len() as i64) as usize
        };
        let mut t = Totals::default();
        for (i, s) in self
            .seconds
            .iter()
            .enumerate()
            .take(index(to))
            .skip(index(from))
        {
            t.errors += u64::from(s.errors);
            t.latency_sum_ms += s.latency_sum_ms;
            match self.spilled.get(&i) {
                Some(full) => {
                    t.errors += full.errors;
                    for (t, c) in t.histogram.iter_mut().zip(&full.histogram) {
                        *t += c;
                    }
                    t.requests += full.histogram.iter().sum::<u64>();
                }
                None => {
                    for (bucket, count) in s.histogram.cells() {
                        t.histogram[bucket] += count;
                        t.requests += count;
                    }
                }
            }
        }
        t
    }

    /// Whether the series carries these labels (as `sum by (...)` groups them).
    pub fn matches(&self, tags: &VersionTags) -> bool {
        tags.iter().all(|(k, v)| match k.as_str() {
            "destination_workload" => &self.workload == v,
            "destination_service_name" => &self.service == v,
            "destination_workload_namespace" | "destination_service_namespace" => {
                &self.namespace == v
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_spill_past_three_buckets() {
        let mut s = Series::new("ns", "w", "svc", 0.0);
        for latency in [0.1, 0.7, 3.0, 7.0, 20.0, 20.0, 40.0, 1e9] {
            s.record(500.0, latency, false);
        }
        let t = s.totals(SimTime::ZERO, SimTime::from_secs(1));
        assert_eq!(t.requests, 8);
        assert_eq!(&t.histogram[..6], &[1, 1, 1, 1, 2, 1]);
        assert_eq!(t.histogram[HISTOGRAM_LEN - 1], 1);
        assert_eq!(std::mem::size_of::<Second>(), 16);
    }

    #[test]
    fn counts_past_a_cell_or_u16_in_one_second_spill_exactly() {
        let mut s = Series::new("ns", "w", "svc", 0.0);
        // 7,000 requests in one histogram bucket overflow the 11-bit cells; 70,000 errors a u16.
        for _ in 0..7_000 {
            s.record(500.0, 40.0, false);
        }
        for _ in 0..70_000 {
            s.record(1500.0, 40.0, true);
        }
        let t = s.totals(SimTime::ZERO, SimTime::from_secs(1));
        assert_eq!((t.requests, t.errors), (7_000, 0));
        assert_eq!(t.histogram[5], 7_000);
        let t = s.totals(SimTime::ZERO, SimTime::from_secs(2));
        assert_eq!((t.requests, t.errors), (77_000, 70_000));
        assert_eq!(t.histogram[5], 77_000);
        assert_eq!(t.latency_sum_ms, 77_000.0 * 40.0);
    }

    #[test]
    fn a_window_counts_the_seconds_that_start_inside_it() {
        let mut s = Series::new("ns", "w", "svc", 0.0);
        for done_ms in [100.0, 999.0, 1_000.0, 2_500.0] {
            s.record(done_ms, 1.0, false);
        }
        let requests = |from, to| s.totals(SimTime(from), SimTime(to)).requests;
        assert_eq!(requests(0, 1_000), 2);
        assert_eq!(requests(0, 1_001), 3, "the second from 1 s starts inside");
        assert_eq!(requests(1, 3_000), 2, "the second from 0 s starts before");
        assert_eq!(requests(2_000, 2_000), 0);
    }

    #[test]
    fn latencies_fall_in_istios_buckets() {
        assert_eq!(latency_bucket(0.5), 0, "a bound is inclusive (le)");
        assert_eq!(latency_bucket(0.51), 1);
        assert_eq!(latency_bucket(40.0), 5);
        assert_eq!(latency_bucket(5_000.0), 11);
        assert_eq!(latency_bucket(1e12), HISTOGRAM_LEN - 1);
    }
}
