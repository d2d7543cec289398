//! The traffic model: request sources at a fixed rate, split per request by the routing in
//! force when the request arrives, answered by each version according to its profile, and
//! counted per version and per second as Istio's sidecars count them (request count, 5xx count,
//! latency sum and latency histogram), by the time the request completes.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};

use iter8_core::measurement::VersionTags;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::SimTime;
use crate::cluster::Cluster;
use crate::names::Map;
use crate::profile::{self, Latency, Profile, Sampler, VersionProfile};
use crate::router::{HostId, MESH, Router, Rules, fqdn};

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

/// A histogram of one second, packed: up to three `(bucket, count)` cells of 16 bits (5 for
/// the bucket, 11 for the count) in 6 bytes (a version's latencies rarely spread over more
/// buckets in one second, nor count over 2047 in one); past that, the series keeps the full
/// histogram of that second aside. The cells' counts sum to the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PackedHistogram([u16; 3]);

/// Marks a second whose histogram is kept aside (no cell has bucket 31).
const SPILLED: u16 = u16::MAX;
const COUNT_BITS: u32 = 11;
const COUNT_MASK: u16 = (1 << COUNT_BITS) - 1;

impl PackedHistogram {
    /// Counts `n` latencies in bucket `le`, filling cells as `n` single counts would (the first
    /// cell that is empty or holds `le` with room, in order); returns how many did not fit (the
    /// caller spills them).
    fn add(&mut self, le: usize, n: u32) -> u32 {
        if self.0[0] == SPILLED {
            return n;
        }
        let mut left = n;
        for cell in &mut self.0 {
            if left == 0 {
                break;
            }
            if *cell == 0 {
                let put = left.min(u32::from(COUNT_MASK));
                *cell = ((le as u16) << COUNT_BITS) | put as u16;
                left -= put;
            } else if (*cell >> COUNT_BITS) as usize == le {
                let put = left.min(u32::from(COUNT_MASK - (*cell & COUNT_MASK)));
                *cell += put as u16;
                left -= put;
            }
        }
        left
    }

    fn spilled(&self) -> bool {
        self.0[0] == SPILLED
    }

    /// The requests counted (not for a spilled second).
    fn count(&self) -> u64 {
        self.0
            .iter()
            .take_while(|&&c| c != 0 && c != SPILLED)
            .map(|c| u64::from(c & COUNT_MASK))
            .sum()
    }

    /// Adds the counts into a full histogram.
    fn add_to(&self, out: &mut [u64; HISTOGRAM_LEN]) {
        for cell in self.0 {
            if cell == 0 || cell == SPILLED {
                break;
            }
            out[(cell >> COUNT_BITS) as usize] += u64::from(cell & COUNT_MASK);
        }
    }
}

/// The counters of one version over one second (16 bytes: there are many, 3.7 million in the
/// fleet benchmark; the request count is the histogram's). At `u16::MAX` errors, the rest of
/// that second's are counted aside.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Bucket {
    latency_sum_ms: f64,
    errors: u16,
    histogram: PackedHistogram,
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

/// How many of the first `N` latency bounds are below `latency_ms` (a fixed count the
/// compiler unrolls).
#[inline]
fn bounds_below<const N: usize>(latency_ms: f64) -> usize {
    LATENCY_BOUNDS_MS[..N]
        .iter()
        .map(|bound| usize::from(*bound < latency_ms))
        .sum()
}

/// The histogram bucket of a latency.
#[inline]
fn latency_bucket(latency_ms: f64) -> usize {
    // Counted without branches on the random latency (a binary search mispredicts); the
    // bounds past 1 s are compared only for the rare latency beyond (a predictable branch).
    if latency_ms <= LATENCY_BOUNDS_MS[9] {
        bounds_below::<9>(latency_ms)
    } else {
        bounds_below::<{ LATENCY_BOUNDS_MS.len() }>(latency_ms)
    }
}

fn bucket_of(t_ms: f64) -> i64 {
    if t_ms >= 0.0 {
        // Truncation is the floor here, and cheaper than `floor` on baseline x86-64.
        (t_ms as i64) / BUCKET_MS
    } else {
        (t_ms / BUCKET_MS as f64).floor() as i64
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
    first_bucket: i64,
    buckets: Vec<Bucket>,
    spilled: HashMap<usize, [u32; HISTOGRAM_LEN]>,
    /// Errors past `u16::MAX` in a second, by second.
    spilled_errors: HashMap<usize, u64>,
    first_request_ms: f64,
    first_error_ms: f64,
    /// The counters of the complete buckets `[lo, upto)` last summed, as `(lo, upto, sum)`: a
    /// version is queried over a window that starts where its experiment started and grows,
    /// so the next query adds only the seconds since.
    memo: Cell<Option<(usize, usize, Totals)>>,
}

impl Series {
    fn new(namespace: &str, workload: &str, service: &str, first_bucket: i64) -> Self {
        Series {
            namespace: namespace.to_string(),
            workload: workload.to_string(),
            service: service.to_string(),
            first_bucket,
            buckets: Vec::new(),
            spilled: HashMap::new(),
            spilled_errors: HashMap::new(),
            first_request_ms: f64::INFINITY,
            first_error_ms: f64::INFINITY,
            memo: Cell::new(None),
        }
    }

    fn record(&mut self, done_ms: f64, latency_ms: f64, error: bool) {
        let i = self.slot(done_ms);
        self.buckets[i].latency_sum_ms += latency_ms;
        self.count(i, latency_bucket(latency_ms), 1);
        self.first_request_ms = self.first_request_ms.min(done_ms);
        if error {
            self.count_errors(i, 1);
            self.first_error_ms = self.first_error_ms.min(done_ms);
        }
    }

    /// The index of the bucket a request completing at `done_ms` counts in, the bucket
    /// created if need be.
    fn slot(&mut self, done_ms: f64) -> usize {
        let i = (bucket_of(done_ms) - self.first_bucket).max(0) as usize;
        if i >= self.buckets.len() {
            // Grow by whole chunks rather than doubling: series live long and are many. A
            // minute a chunk (960 bytes): smaller chunks meant a reallocation (a copy) every
            // 16 seconds of every series, about 5% of the fleet benchmark; and a first chunk
            // under 1 KiB spares glibc merging its free lists, which it does for every request
            // of 1 KiB or more.
            let needed = i + 1 - self.buckets.len();
            if self.buckets.capacity() < i + 1 {
                self.buckets.reserve_exact(needed.max(60));
            }
            self.buckets.resize(i + 1, Bucket::default());
        }
        i
    }

    /// Counts `n` latencies in histogram bucket `le` of bucket `i`.
    fn count(&mut self, i: usize, le: usize, n: u32) {
        let b = &mut self.buckets[i];
        let left = b.histogram.add(le, n);
        if left > 0 {
            let full = self.spilled.entry(i).or_insert([0; HISTOGRAM_LEN]);
            if !b.histogram.spilled() {
                let mut counts = [0u64; HISTOGRAM_LEN];
                b.histogram.add_to(&mut counts);
                for (f, c) in full.iter_mut().zip(counts) {
                    *f += c as u32;
                }
                b.histogram.0 = [SPILLED, 0, 0];
            }
            full[le] += left;
        }
    }

    /// Counts `n` errors in bucket `i`.
    fn count_errors(&mut self, i: usize, n: u32) {
        let b = &mut self.buckets[i];
        let room = u32::from(u16::MAX - b.errors);
        b.errors += n.min(room) as u16;
        if n > room {
            *self.spilled_errors.entry(i).or_default() += u64::from(n - room);
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

    /// Counters of the requests completed in `[from, to)` (bucket-aligned: a bucket counts
    /// when it starts inside the window).
    pub fn totals(&self, from: SimTime, to: SimTime) -> Totals {
        let (lo, hi) = self.range(from, to);
        let mut t = Totals::default();
        self.sum(&mut t, lo, hi);
        t
    }

    /// [`Series::totals`], reusing the sum of the buckets it summed last time when the window
    /// starts at the same second. `horizon`: up to when requests have been generated (every
    /// request still to come completes at or after it, so the buckets before it are complete).
    /// The buckets are added in the same order, so the sums are the same to the bit.
    pub fn totals_since(&self, from: SimTime, to: SimTime, horizon: SimTime) -> Totals {
        let (lo, hi) = self.range(from, to);
        let complete = (horizon.millis().div_euclid(BUCKET_MS) - self.first_bucket)
            .clamp(lo as i64, hi.max(lo) as i64) as usize;
        let (mut t, done) = match self.memo.get() {
            Some((l, upto, t)) if l == lo && upto <= complete => (t, upto),
            _ => (Totals::default(), lo),
        };
        self.sum(&mut t, done, complete);
        self.memo.set(Some((lo, complete, t)));
        self.sum(&mut t, complete, hi);
        t
    }

    /// The bucket indices of `[from, to)` (a bucket counts when it starts inside the window).
    fn range(&self, from: SimTime, to: SimTime) -> (usize, usize) {
        let lo = (from.millis().div_euclid(BUCKET_MS)
            + i64::from(from.millis().rem_euclid(BUCKET_MS) != 0)
            - self.first_bucket)
            .max(0) as usize;
        let hi = (to.millis().div_euclid(BUCKET_MS)
            + i64::from(to.millis().rem_euclid(BUCKET_MS) != 0)
            - self.first_bucket)
            .clamp(0, self.buckets.len() as i64) as usize;
        (lo, hi)
    }

    /// Adds the counters of buckets `[lo, hi)`.
    fn sum(&self, t: &mut Totals, lo: usize, hi: usize) {
        for (i, b) in self.buckets.iter().enumerate().take(hi).skip(lo) {
            t.errors += u64::from(b.errors);
            if b.errors == u16::MAX {
                t.errors += self.spilled_errors.get(&i).copied().unwrap_or_default();
            }
            t.latency_sum_ms += b.latency_sum_ms;
            if b.histogram.spilled() {
                if let Some(full) = self.spilled.get(&i) {
                    for (t, c) in t.histogram.iter_mut().zip(full) {
                        *t += u64::from(*c);
                    }
                    t.requests += full.iter().map(|&c| u64::from(c)).sum::<u64>();
                }
            } else {
                t.requests += b.histogram.count();
                b.histogram.add_to(&mut t.histogram);
            }
        }
    }

    /// Whether the series carries these labels (as `sum by (...)` groups them).
    pub fn matches(&self, tags: &VersionTags) -> bool {
        let nothing = Known {
            workload: false,
            service: false,
            namespace: None,
        };
        self.matches_known(tags, &nothing)
    }

    /// [`Series::matches`], taking what is `known` of the series as carried.
    fn matches_known(&self, tags: &VersionTags, known: &Known<'_>) -> bool {
        tags.iter().all(|(k, v)| match k.as_str() {
            "destination_workload" => known.workload || &self.workload == v,
            "destination_service_name" => known.service || &self.service == v,
            "destination_workload_namespace" | "destination_service_namespace" => {
                known.namespace == Some(v.as_str()) || &self.namespace == v
            }
            _ => false,
        })
    }
}

/// The counters of one series' current second, gathered while a source sends and added to the
/// series when its requests move on to another second: a request then costs no division and
/// no write to the series. Each second's latencies are still summed in request order from
/// what the series held (same sums to the bit).
struct Pending {
    series: usize,
    bucket: usize,
    /// The second's span `[start_ms, end_ms)`; empty while nothing is open.
    start_ms: f64,
    end_ms: f64,
    latency_sum_ms: f64,
    counts: [u32; HISTOGRAM_LEN],
    /// Bit `le` set when `counts[le]` is not 0 (a second's latencies fall in a few buckets).
    touched: u32,
    errors: u32,
    first_request_ms: f64,
    first_error_ms: f64,
}

impl Pending {
    const CLOSED: Pending = Pending {
        series: usize::MAX,
        bucket: 0,
        start_ms: f64::INFINITY,
        end_ms: f64::NEG_INFINITY,
        latency_sum_ms: 0.0,
        counts: [0; HISTOGRAM_LEN],
        touched: 0,
        errors: 0,
        first_request_ms: f64::INFINITY,
        first_error_ms: f64::INFINITY,
    };

    /// Counts one request (of this series, completing in its open second).
    #[inline]
    fn add(&mut self, done_ms: f64, latency_ms: f64, error: bool) {
        self.latency_sum_ms += latency_ms;
        let le = latency_bucket(latency_ms);
        self.counts[le] += 1;
        self.touched |= 1 << le;
        self.first_request_ms = self.first_request_ms.min(done_ms);
        if error {
            self.errors += 1;
            self.first_error_ms = self.first_error_ms.min(done_ms);
        }
    }

    /// Adds what was gathered to the series and opens the second of `done_ms` in `series`.
    fn reopen(&mut self, all: &mut [Series], series: usize, done_ms: f64) {
        self.flush(all);
        let s = &mut all[series];
        let bucket = s.slot(done_ms);
        let k = s.first_bucket + bucket as i64;
        // Field by field: the counts are 0 again after a flush, and copying a whole closed
        // `Pending` over them cost more than the rest.
        self.series = series;
        self.bucket = bucket;
        // Exact bounds (whole seconds in ms); bucket 0 also holds whatever completes before
        // it. A negative start (never: time starts at 0) leaves nothing open.
        self.start_ms = if bucket == 0 {
            f64::NEG_INFINITY
        } else {
            (k * BUCKET_MS) as f64
        };
        self.end_ms = if s.first_bucket < 0 {
            f64::NEG_INFINITY
        } else {
            ((k + 1) * BUCKET_MS) as f64
        };
        self.latency_sum_ms = s.buckets[bucket].latency_sum_ms;
    }

    /// Adds what was gathered to the series, and closes (leaving the counts at 0).
    fn flush(&mut self, all: &mut [Series]) {
        let Some(s) = all.get_mut(self.series) else {
            return;
        };
        let i = self.bucket;
        s.buckets[i].latency_sum_ms = self.latency_sum_ms;
        let mut touched = self.touched;
        while touched != 0 {
            let le = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            s.count(i, le, self.counts[le]);
            self.counts[le] = 0;
        }
        if self.errors > 0 {
            s.count_errors(i, self.errors);
        }
        s.first_request_ms = s.first_request_ms.min(self.first_request_ms);
        s.first_error_ms = s.first_error_ms.min(self.first_error_ms);
        self.series = usize::MAX;
        self.start_ms = f64::INFINITY;
        self.end_ms = f64::NEG_INFINITY;
        self.touched = 0;
        self.errors = 0;
        self.first_request_ms = f64::INFINITY;
        self.first_error_ms = f64::INFINITY;
    }
}

// `Pending::touched` has a bit per histogram bucket.
const _: () = assert!(HISTOGRAM_LEN <= 32);

/// How many series a source gathers seconds for at once (more ways go straight to the series).
const PENDING: usize = 4;

/// What is known of a series found through an index: the name it was found by, and its
/// namespace.
struct Known<'a> {
    workload: bool,
    service: bool,
    namespace: Option<&'a str>,
}

/// Where a source sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Service, from inside the mesh.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A host name, through the ingress gateway (routed only by rules bound to a Gateway that
    /// exists and serves the host).
    Host(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Service { namespace, name } => write!(f, "service {name}.{namespace}"),
            Target::Host(h) => write!(f, "host {h}"),
        }
    }
}

/// 2^32, to turn 32 random bits into a uniform number.
const TWO_32: f64 = 4_294_967_296.0;

/// One weighted way out of a source: a series and how the version answers.
#[derive(Debug, Clone)]
struct Way {
    upto: f64,
    series: usize,
    sampler: Sampler,
    error_rate: f64,
}

#[derive(Debug, Clone, Default)]
struct Route {
    ways: Vec<Way>,
    total: f64,
}

/// A load generator: `rate` requests per second from `start`.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where requests go.
    pub target: Target,
    /// The host its routing is looked up by.
    host: String,
    /// Its number at the router, once the host has been routed.
    host_id: Option<HostId>,
    /// Requests per second.
    pub rate: f64,
    /// When it starts sending.
    pub start: SimTime,
    /// Requests sent so far.
    pub sent: u64,
    /// Of which no route or no endpoint took (404/503 at the edge: not counted by any version).
    pub dropped: u64,
    rng: ChaCha8Rng,
    route: Option<((u64, u64), Route)>,
    /// The destinations its routes have had, resolved to series and answers (routes change
    /// every iteration, mostly in weight only).
    resolved: Resolutions,
}

/// The versions a source's destinations reach, under one (cluster, profiles, rules' names)
/// key: each way with its destination's index; bit `d` of `done` is set once destination `d`
/// was resolved (it may reach no version).
#[derive(Debug, Clone, Default)]
struct Resolutions {
    key: (u64, u64, u64),
    done: u64,
    ways: Vec<(usize, Way)>,
}

/// Every source and series, and the versions' profiles.
#[derive(Debug, Clone)]
pub struct Traffic {
    seed: u64,
    sources: Vec<Source>,
    series: Vec<Series>,
    by_workload: Map<String, Map<String, Vec<usize>>>,
    by_service: Map<String, Map<String, Vec<usize>>>,
    profiles: Map<String, VersionProfile>,
    /// The profiles' latencies, prepared once (routes change often).
    samplers: Map<String, Sampler>,
    prepared: HashMap<(u8, u64, u64), Sampler>,
    default_sampler: Sampler,
    given: BTreeSet<String>,
    default_profile: VersionProfile,
    horizon: SimTime,
    /// Bumped when profiles are added (resolved destinations are redone).
    profiles_generation: u64,
}

impl Traffic {
    /// No sources yet; randomness derived from `seed`.
    pub fn new(seed: u64) -> Self {
        Traffic {
            seed,
            sources: Vec::new(),
            series: Vec::new(),
            by_workload: Map::default(),
            by_service: Map::default(),
            profiles: Map::default(),
            samplers: Map::default(),
            prepared: HashMap::new(),
            default_sampler: Sampler::new(&VersionProfile::fixed(10.0).latency),
            given: BTreeSet::new(),
            default_profile: VersionProfile::fixed(10.0),
            horizon: SimTime::ZERO,
            profiles_generation: 1,
        }
    }

    /// Adds a source sending from `start` (or from the traffic's horizon, if later). Each
    /// source has its own random stream, so adding one does not change the others' draws.
    pub fn add_source(&mut self, target: Target, rate: f64, start: SimTime) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.sources.len() as u64);
        let host = match &target {
            Target::Service { namespace, name } => fqdn(name, namespace),
            Target::Host(h) => h.clone(),
        };
        self.sources.push(Source {
            target,
            host,
            host_id: None,
            rate,
            start: start.max(self.horizon),
            sent: 0,
            dropped: 0,
            rng,
            route: None,
            resolved: Resolutions::default(),
        });
    }

    /// The sources.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Adds (or replaces) version profiles.
    pub fn add_profiles(&mut self, profile: &Profile) {
        for (name, v) in &profile.versions {
            self.given.extend(v.metrics.keys().cloned());
            self.profiles.insert(name.clone(), v.clone());
            // Versions with the same distribution share one sampler (and its table).
            let l = v.latency;
            let key = match l {
                Latency::Fixed { ms, jitter_ms } => (0, ms.to_bits(), jitter_ms.to_bits()),
                Latency::Lognormal { median_ms, sigma } => {
                    (1, median_ms.to_bits(), sigma.to_bits())
                }
            };
            let sampler = self
                .prepared
                .entry(key)
                .or_insert_with(|| Sampler::new(&l))
                .clone();
            self.samplers.insert(name.clone(), sampler);
        }
        self.profiles_generation += 1;
        for s in &mut self.sources {
            s.route = None;
        }
    }

    /// The profile of a version (by Deployment, then Service name), if one was given.
    pub fn profile(&self, workload: &str, service: &str) -> Option<&VersionProfile> {
        self.profiles
            .get(workload)
            .or_else(|| self.profiles.get(service))
    }

    /// How a version answers: its latency sampler and error rate (by Deployment, then Service
    /// name; the default profile when none was given).
    fn answer(&self, workload: &str, service: &str) -> (Sampler, f64) {
        [workload, service]
            .into_iter()
            .find_map(|name| Some((self.samplers.get(name)?, self.profiles.get(name)?)))
            .map_or(
                (
                    self.default_sampler.clone(),
                    self.default_profile.error_rate,
                ),
                |(s, p)| (s.clone(), p.error_rate),
            )
    }

    /// Whether some version's profile gives a value for this metric.
    pub fn profile_gives(&self, metric: &str) -> bool {
        self.given.contains(metric)
    }

    /// Every series.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The series carrying these labels.
    pub fn matching<'a>(&'a self, tags: &'a VersionTags) -> Vec<&'a Series> {
        let mut all = Vec::new();
        self.for_each_matching(tags, |s| all.push(s));
        all
    }

    /// Calls `f` with each series carrying these labels (in the order of [`Traffic::matching`]),
    /// without collecting them.
    pub fn for_each_matching<'a>(&'a self, tags: &VersionTags, mut f: impl FnMut(&'a Series)) {
        self.for_each_matching_index(tags, |i| f(&self.series[i]));
    }

    /// [`Traffic::for_each_matching`], by index into [`Traffic::series`].
    pub fn for_each_matching_index(&self, tags: &VersionTags, mut f: impl FnMut(usize)) {
        let ns = tags
            .get("destination_workload_namespace")
            .or_else(|| tags.get("destination_service_namespace"));
        // Found through an index, a series is known to carry the labels it was looked up by:
        // those are not compared again (its names are out of cache in a large simulation).
        let (candidates, known) = match (
            tags.get("destination_workload"),
            tags.get("destination_service_name"),
            ns,
        ) {
            (Some(w), _, Some(ns)) => (
                self.by_workload.get(ns).and_then(|m| m.get(w)),
                Known {
                    workload: true,
                    service: false,
                    namespace: Some(ns),
                },
            ),
            (None, Some(s), Some(ns)) => (
                self.by_service.get(ns).and_then(|m| m.get(s)),
                Known {
                    workload: false,
                    service: true,
                    namespace: Some(ns),
                },
            ),
            _ => {
                (0..self.series.len())
                    .filter(|&i| self.series[i].matches(tags))
                    .for_each(f);
                return;
            }
        };
        for &i in candidates.into_iter().flatten() {
            if self.series[i].matches_known(tags, &known) {
                f(i);
            }
        }
    }

    /// Up to when requests have been generated.
    pub fn horizon(&self) -> SimTime {
        self.horizon
    }

    fn series_index(&mut self, namespace: &str, workload: &str, service: &str, at: f64) -> usize {
        let existing = self
            .by_workload
            .get(namespace)
            .and_then(|m| m.get(workload))
            .into_iter()
            .flatten()
            .copied()
            .find(|&i| self.series[i].service == service);
        if let Some(i) = existing {
            return i;
        }
        let i = self.series.len();
        self.series
            .push(Series::new(namespace, workload, service, bucket_of(at)));
        self.by_workload
            .entry(namespace.to_string())
            .or_default()
            .entry(workload.to_string())
            .or_default()
            .push(i);
        self.by_service
            .entry(namespace.to_string())
            .or_default()
            .entry(service.to_string())
            .or_default()
            .push(i);
        i
    }

    /// Generates every request arriving before `to`, routed as the cluster and router say now
    /// (call it before anything changes routing or the cluster).
    pub fn advance(&mut self, to: SimTime, cluster: &Cluster, router: &Router) {
        self.generate(to, cluster, router, true);
    }

    /// [`Traffic::advance`]; `gather`: each second's counters gathered before they are added
    /// to the series (false: each request added as it is made, the reference the tests
    /// compare against).
    fn generate(&mut self, to: SimTime, cluster: &Cluster, router: &Router, gather: bool) {
        if to <= self.horizon {
            return;
        }
        let to_ms = to.millis() as f64;
        for s in 0..self.sources.len() {
            let src = &mut self.sources[s];
            if src.host_id.is_none() {
                src.host_id = router.host_id(&src.host);
            }
            let host_generation = src.host_id.map_or(0, |id| router.generation_of(id));
            let generation = (cluster.generation(), host_generation);
            let step_ms = 1000.0 / src.rate;
            let start_ms = src.start.millis() as f64;
            if start_ms + src.sent as f64 * step_ms >= to_ms {
                continue;
            }
            if src.route.as_ref().is_none_or(|(g, _)| *g != generation) {
                let route = self.route(s, cluster, router);
                self.sources[s].route = Some((generation, route));
            }
            let Traffic {
                sources, series, ..
            } = self;
            let src = &mut sources[s];
            let Some((_, route)) = &src.route else {
                continue;
            };
            // One open second per distinct series the ways reach (two ways to one series
            // share it, so that its latencies are summed in request order).
            let mut pending = [
                Pending::CLOSED,
                Pending::CLOSED,
                Pending::CLOSED,
                Pending::CLOSED,
            ];
            let mut slot_of = [0usize; PENDING];
            let gathered = gather && route.ways.len() <= PENDING;
            if gathered {
                for (w, way) in route.ways.iter().enumerate() {
                    slot_of[w] = route.ways[..=w]
                        .iter()
                        .position(|o| o.series == way.series)
                        .unwrap_or(w);
                }
            }
            loop {
                let at = start_ms + src.sent as f64 * step_ms;
                if at >= to_ms {
                    break;
                }
                src.sent += 1;
                // One 64-bit draw serves both the routing (high half) and the latency (low
                // half) of a request; none is drawn when neither is random.
                let mut draw = None;
                let w = match route.ways.len() {
                    0 => None,
                    1 if route.total >= 100.0 => Some(0),
                    _ => {
                        let r = src.rng.random::<u64>();
                        draw = Some(r);
                        let u = (r >> 32) as f64 * (100.0 / TWO_32);
                        // The first way whose upper end is above `u` (ends increase), found
                        // without branching on the random number.
                        let i: usize = route.ways.iter().map(|w| usize::from(w.upto <= u)).sum();
                        Some(i).filter(|&i| i < route.ways.len())
                    }
                };
                let Some(w) = w else {
                    src.dropped += 1;
                    continue;
                };
                let way = &route.ways[w];
                let latency = if way.sampler.is_random() {
                    let low = draw.unwrap_or_else(|| src.rng.random::<u64>()) & 0xFFFF_FFFF;
                    way.sampler.at((low as f64 + 0.5) / TWO_32)
                } else {
                    way.sampler.at(0.5)
                };
                let error = profile::sample_error(way.error_rate, &mut src.rng);
                let done = at + latency;
                if gathered {
                    let p = &mut pending[slot_of[w]];
                    if !(done >= p.start_ms && done < p.end_ms) || p.series != way.series {
                        p.reopen(series, way.series, done);
                    }
                    p.add(done, latency, error);
                } else {
                    series[way.series].record(done, latency, error);
                }
            }
            for p in &mut pending {
                p.flush(series);
            }
        }
        self.horizon = to;
    }

    /// Resolves where a source's requests go now.
    fn route(&mut self, s: usize, cluster: &Cluster, router: &Router) -> Route {
        // Every request still to generate arrives at or after the horizon.
        let at = self.horizon.millis() as f64;
        let rules = {
            let src = &self.sources[s];
            // By the host's number once it has one (routes change every iteration).
            let (mut by_number, mut by_name);
            let mut routing: &mut dyn Iterator<Item = &Rules> = match src.host_id {
                Some(id) => {
                    by_number = router.routing_of(id);
                    &mut by_number
                }
                None => {
                    by_name = router.routing(&src.host);
                    &mut by_name
                }
            };
            match &src.target {
                Target::Service { .. } => {
                    Iterator::find(&mut routing, |r| r.gateways.iter().any(|g| g == MESH))
                }
                Target::Host(host) => Iterator::find(&mut routing, |r| {
                    r.gateways.iter().any(|g| {
                        g != MESH
                            && cluster
                                .gateway(&r.namespace, g)
                                .is_some_and(|gw| gw.serves(host))
                    })
                }),
            }
        };
        // Without rules, a Service's requests go to every pod it selects.
        let unrouted = match (&self.sources[s].target, rules) {
            (Target::Service { namespace, name }, None) => Some((namespace.clone(), name.clone())),
            _ => None,
        };
        // (namespace, service, workload or every selected pod, weight)
        let dests: Vec<(&str, &str, Option<&str>, f64)> = match rules {
            Some(r) => r
                .destinations
                .iter()
                .map(|d| {
                    let weight = f64::from(d.weight);
                    (
                        r.namespace.as_str(),
                        d.service.as_str(),
                        d.workload.as_deref(),
                        weight,
                    )
                })
                .collect(),
            None => unrouted
                .iter()
                .map(|(ns, name)| (ns.as_str(), name.as_str(), None, 100.0))
                .collect(),
        };
        // Rules whose names have not changed reach the same versions while neither the cluster
        // nor the profiles change: only the weights are new.
        let key = (
            cluster.generation(),
            self.profiles_generation,
            rules.map_or(0, |r| r.names),
        );
        let mut known = std::mem::take(&mut self.sources[s].resolved);
        if known.key != key {
            known = Resolutions {
                key,
                done: 0,
                ways: Vec::new(),
            };
        }
        let mut route = Route::default();
        for (d, &(ns, service, workload, weight)) in dests.iter().enumerate() {
            if weight <= 0.0 {
                continue;
            }
            // Past 64 destinations (never seen in practice), resolved every time.
            let bit = 1u64.checked_shl(d as u32).unwrap_or(0);
            let start = route.ways.len();
            if known.done & bit == 0 {
                for (series, sampler, error_rate) in
                    self.resolve(cluster, ns, service, workload, at)
                {
                    let way = Way {
                        upto: 0.0,
                        series,
                        sampler,
                        error_rate,
                    };
                    if bit != 0 {
                        known.ways.push((d, way.clone()));
                    }
                    route.ways.push(way);
                }
                known.done |= bit;
            } else {
                route.ways.extend(
                    known
                        .ways
                        .iter()
                        .filter(|(i, _)| *i == d)
                        .map(|(_, w)| w.clone()),
                );
            }
            let n = (route.ways.len() - start) as f64;
            for w in &mut route.ways[start..] {
                route.total += weight / n;
                w.upto = route.total;
            }
        }
        self.sources[s].resolved = known;
        route
    }

    /// The versions a destination reaches: each one's series and how it answers.
    fn resolve(
        &mut self,
        cluster: &Cluster,
        ns: &str,
        service: &str,
        workload: Option<&str>,
        at: f64,
    ) -> Vec<(usize, Sampler, f64)> {
        let pods: Vec<String> = match workload {
            Some(w) => cluster
                .deployment(ns, w)
                .map(|d| vec![d.name.clone()])
                .unwrap_or_default(),
            None => cluster
                .service(ns, service)
                .map(|svc| {
                    cluster
                        .selected(svc)
                        .into_iter()
                        .map(|d| d.name.clone())
                        .collect()
                })
                .unwrap_or_default(),
        };
        pods.iter()
            .map(|pod| {
                let (sampler, error_rate) = self.answer(pod, service);
                (self.series_index(ns, pod, service, at), sampler, error_rate)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{deployment, experiment, reviews, reviews_cluster, reviews_traffic};

    /// [`reviews_cluster`] with a reviews-v3 candidate, and an experiment from v2 to v3.
    fn cluster_with_candidate() -> (Cluster, iter8_core::Experiment) {
        let mut c = reviews_cluster();
        c.apply_deployment(deployment("reviews-v3", "v3"));
        (c, experiment("e", "reviews-v2", "reviews-v3"))
    }

    #[test]
    fn counts_every_request_once_by_completion_time() {
        let c = reviews_cluster();
        let r = Router::default();
        let mut t = reviews_traffic(1, 10.0);
        t.advance(SimTime::from_secs(60), &c, &r);
        let s = &t.series()[0];
        assert_eq!(s.workload, "reviews-v2");
        // 600 requests of 10 ms: those arriving in the last 10 ms complete at 60 s.
        let all = s.totals(SimTime::ZERO, SimTime::from_secs(61));
        assert_eq!(all.requests, 600);
        assert_eq!(
            s.totals(SimTime::ZERO, SimTime::from_secs(30)).requests,
            300
        );
        assert_eq!(all.histogram[3], 600); // (5, 10]
        assert!((all.latency_sum_ms - 6000.0).abs() < 1e-6);
        assert!(s.exists_at(SimTime::from_secs(1)) && !s.errors_exist_at(SimTime::from_secs(60)));
    }

    #[test]
    fn routes_follow_weight_and_version_changes() {
        use iter8_core::TrafficSplit;
        use iter8_core::action::{RoutingAction, Winner};
        let (c, exp) = cluster_with_candidate();
        let mut r = Router::default();
        let mut t = reviews_traffic(1, 100.0);
        let requests = |t: &Traffic, workload: &str, from: i64, to: i64| {
            t.series()
                .iter()
                .filter(|s| s.workload == workload)
                .map(|s| {
                    s.totals(SimTime::from_secs(from), SimTime::from_secs(to))
                        .requests
                })
                .sum::<u64>()
        };
        r.apply(&exp, &RoutingAction::Initialize).unwrap();
        t.advance(SimTime::from_secs(10), &c, &r);
        r.apply(
            &exp,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(50)),
        )
        .unwrap();
        t.advance(SimTime::from_secs(20), &c, &r);
        r.apply(
            &exp,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(100)),
        )
        .unwrap();
        t.advance(SimTime::from_secs(30), &c, &r);
        r.apply(
            &exp,
            &RoutingAction::Finalize {
                winner: Winner::Candidate,
                split: TrafficSplit::ALL_CANDIDATE,
            },
        )
        .unwrap();
        t.advance(SimTime::from_secs(40), &c, &r);
        assert_eq!(requests(&t, "reviews-v3", 1, 10), 0);
        let half = requests(&t, "reviews-v3", 11, 20);
        assert!(
            (300..600).contains(&half),
            "{half} of 900 to the candidate at 50%"
        );
        assert_eq!(requests(&t, "reviews-v2", 21, 30), 0);
        // The final rules' only destination (index 0, as the baseline's was) is the candidate.
        assert_eq!(requests(&t, "reviews-v2", 31, 40), 0);
        assert_eq!(requests(&t, "reviews-v3", 31, 40), 900);
    }

    #[test]
    fn series_found_by_index_still_check_the_other_labels() {
        let c = reviews_cluster();
        let r = Router::default();
        let mut t = reviews_traffic(1, 1.0);
        t.advance(SimTime::from_secs(5), &c, &r);
        let tags = |pairs: &[(&str, &str)]| -> VersionTags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let found = |labels: &[(&str, &str)]| t.matching(&tags(labels)).len();
        let w = ("destination_workload", "reviews-v2");
        assert_eq!(found(&[w, ("destination_workload_namespace", "ns")]), 1);
        assert_eq!(
            found(&[
                w,
                ("destination_workload_namespace", "ns"),
                ("destination_service_namespace", "other")
            ]),
            0
        );
        assert_eq!(
            found(&[
                w,
                ("destination_workload_namespace", "ns"),
                ("destination_service_name", "ratings")
            ]),
            0
        );
        assert_eq!(
            found(&[
                ("destination_service_name", "reviews"),
                ("destination_service_namespace", "ns")
            ]),
            1
        );
    }

    #[test]
    fn growing_windows_sum_the_same_with_the_memo() {
        let c = reviews_cluster();
        let r = Router::default();
        let mut t = reviews_traffic(3, 7.0);
        let from = SimTime::from_secs(2);
        for end_ms in [1_500, 4_000, 4_700, 9_000, 9_001, 15_250] {
            let to = SimTime(end_ms);
            t.advance(to, &c, &r);
            let s = &t.series()[0];
            assert_eq!(
                s.totals_since(from, to, t.horizon()),
                s.totals(from, to),
                "window ending at {end_ms} ms"
            );
        }
        // Another start: the memo does not apply.
        let s = &t.series()[0];
        let to = SimTime(15_250);
        assert_eq!(
            s.totals_since(SimTime::from_secs(5), to, t.horizon()),
            s.totals(SimTime::from_secs(5), to)
        );
    }

    #[test]
    fn gathered_seconds_count_exactly_as_request_by_request() {
        use iter8_core::TrafficSplit;
        use iter8_core::action::RoutingAction;
        let (c, exp) = cluster_with_candidate();
        let mut r = Router::default();
        r.apply(&exp, &RoutingAction::Initialize).unwrap();
        r.apply(
            &exp,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(40)),
        )
        .unwrap();
        let run = |gather: bool| {
            let mut t = Traffic::new(5);
            // Random latencies spread over seconds, some past 1 s, and errors.
            let mut profile = Profile::default();
            profile.versions.insert(
                "reviews-v2".into(),
                VersionProfile {
                    latency: Latency::Lognormal {
                        median_ms: 300.0,
                        sigma: 1.2,
                    },
                    error_rate: 0.3,
                    metrics: Default::default(),
                },
            );
            t.add_profiles(&profile);
            t.add_source(reviews(), 3_500.0, SimTime::ZERO);
            t.add_source(reviews(), 7.0, SimTime(250));
            for end_ms in [900, 1_000, 4_321, 9_000] {
                t.generate(SimTime(end_ms), &c, &r, gather);
            }
            t
        };
        let (gathered, direct) = (run(true), run(false));
        assert_eq!(gathered.series().len(), 2);
        for (g, d) in gathered.series().iter().zip(direct.series()) {
            for from in 0..10 {
                let (from, to) = (SimTime::from_secs(from), SimTime::from_secs(from + 1));
                let (a, b) = (g.totals(from, to), d.totals(from, to));
                // To the bit: the latency sums were added in the same order.
                assert_eq!(a, b, "{} at {from:?}", g.workload);
                assert_eq!(a.latency_sum_ms.to_bits(), b.latency_sum_ms.to_bits());
            }
            assert_eq!(g.first_request_ms.to_bits(), d.first_request_ms.to_bits());
            assert_eq!(g.first_error_ms.to_bits(), d.first_error_ms.to_bits());
        }
        // 3,500 requests a second overflow the packed cells: the spill path was taken.
        assert!(gathered.series().iter().any(|s| !s.spilled.is_empty()));
    }

    #[test]
    fn histograms_spill_past_three_buckets() {
        let mut s = Series::new("ns", "w", "svc", 0);
        for latency in [0.1, 0.7, 3.0, 7.0, 20.0, 20.0, 40.0, 1e9] {
            s.record(500.0, latency, false);
        }
        let t = s.totals(SimTime::ZERO, SimTime::from_secs(1));
        assert_eq!(t.requests, 8);
        assert_eq!(&t.histogram[..6], &[1, 1, 1, 1, 2, 1]);
        assert_eq!(t.histogram[HISTOGRAM_LEN - 1], 1);
        assert_eq!(std::mem::size_of::<Bucket>(), 16);
    }

    #[test]
    fn counting_many_at_once_packs_as_counting_one_by_one() {
        // Bucket runs that fill a cell, open a second cell for the same bucket, and overflow.
        let runs: [&[(usize, u32)]; 4] = [
            &[(5, 3), (6, 2), (5, 4)],
            &[(5, 2047), (5, 1), (6, 10)],
            &[(5, 3000), (6, 5)],
            &[(1, 1), (2, 1), (3, 1), (4, 7)],
        ];
        for run in runs {
            let (mut at_once, mut one_by_one) =
                (PackedHistogram::default(), PackedHistogram::default());
            let (mut left_at_once, mut left_one_by_one) = (0, 0);
            for &(le, n) in run {
                left_at_once += at_once.add(le, n);
                for _ in 0..n {
                    left_one_by_one += one_by_one.add(le, 1);
                }
            }
            assert_eq!(at_once, one_by_one, "{run:?}");
            assert_eq!(left_at_once, left_one_by_one, "{run:?}");
        }
    }

    #[test]
    fn counts_past_a_cell_or_u16_in_one_second_spill_exactly() {
        let mut s = Series::new("ns", "w", "svc", 0);
        // 3,000 requests in one bucket overflow an 11-bit cell; 70,000 errors a u16.
        for _ in 0..3_000 {
            s.record(500.0, 40.0, false);
        }
        for _ in 0..70_000 {
            s.record(1500.0, 40.0, true);
        }
        let t = s.totals(SimTime::ZERO, SimTime::from_secs(1));
        assert_eq!((t.requests, t.errors), (3_000, 0));
        assert_eq!(t.histogram[5], 3_000);
        let t = s.totals(SimTime::ZERO, SimTime::from_secs(2));
        assert_eq!((t.requests, t.errors), (73_000, 70_000));
        assert_eq!(t.histogram[5], 73_000);
        assert_eq!(t.latency_sum_ms, 73_000.0 * 40.0);
    }

    #[test]
    fn no_route_for_a_host_without_gateway_drops_requests() {
        let c = reviews_cluster();
        let r = Router::default();
        let mut t = Traffic::new(1);
        t.add_source(Target::Host("x.dev".into()), 2.0, SimTime::ZERO);
        t.advance(SimTime::from_secs(10), &c, &r);
        assert_eq!((t.sources()[0].sent, t.sources()[0].dropped), (20, 20));
        assert!(t.series().is_empty());
    }
}
