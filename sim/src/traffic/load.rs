//! Load generation: each source sends requests at a fixed rate; each request takes the route in
//! force when it arrives and is counted in the series of the version that answers it.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

use crate::clock::SimTime;
use crate::cluster::Cluster;
use crate::router::{Router, fqdn};

use super::Traffic;
use super::routes::{Route, Target};

/// What a source's route was resolved under: the cluster's generation, the routing generation
/// of its host, the profiles' generation. Any change resolves it again.
type RouteKey = (u64, u64, u64);

/// A load generator: `rate` requests per second from `start`.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where requests go.
    pub target: Target,
    /// The host its routing is looked up by.
    pub(super) host: String,
    /// Requests per second.
    pub rate: f64,
    /// When it starts sending.
    pub start: SimTime,
    /// Requests sent so far.
    pub sent: u64,
    /// Of which no route or no endpoint took (404/503 at the edge: not counted by any version).
    pub dropped: u64,
    rng: ChaCha8Rng,
    route: Option<(RouteKey, Route)>,
}

impl Source {
    /// When its next request arrives, in milliseconds.
    fn next_arrival_ms(&self) -> f64 {
        self.start.millis() as f64 + self.sent as f64 * 1000.0 / self.rate
    }
}

impl Traffic {
    /// Adds a source sending from `start` (or from the traffic's horizon, if later). Each
    /// source draws from its own stream of the seed, so adding one does not change the others'
    /// draws.
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
            rate,
            start: start.max(self.horizon),
            sent: 0,
            dropped: 0,
            rng,
            route: None,
        });
    }

    /// Generates every request arriving before `to`, routed as the cluster and router say now
    /// (call it before anything changes routing or the cluster).
    pub fn advance(&mut self, to: SimTime, cluster: &Cluster, router: &Router) {
        if to <= self.horizon {
            return;
        }
        let to_ms = to.millis() as f64;
        for s in 0..self.sources.len() {
            if self.sources[s].next_arrival_ms() >= to_ms {
                continue;
            }
            let key = (
                cluster.generation(),
                router.host_generation(&self.sources[s].host),
                self.profiles_generation,
            );
            if self.sources[s]
                .route
                .as_ref()
                .is_none_or(|(k, _)| *k != key)
            {
                let route = self.route(s, cluster, router);
                self.sources[s].route = Some((key, route));
            }
            let Traffic {
                sources, series, ..
            } = self;
            let source = &mut sources[s];
            while source.next_arrival_ms() < to_ms {
                let at_ms = source.next_arrival_ms();
                source.sent += 1;
                let u = source.rng.random::<f64>() * 100.0;
                let way = source.route.as_ref().and_then(|(_, route)| route.pick(u));
                let Some(way) = way else {
                    source.dropped += 1;
                    continue;
                };
                let latency = way.latency.sample(&mut source.rng);
                let error = way.errors.sample(&mut source.rng);
                series[way.series].record(at_ms + latency, latency, error);
            }
        }
        self.horizon = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{deployment, experiment, reviews_cluster, reviews_traffic};
    use iter8_core::measurement::VersionTags;

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
        let mut c = reviews_cluster();
        c.apply_deployment(deployment("reviews-v3", "v3"));
        let exp = experiment("e", "reviews-v2", "reviews-v3");
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
        assert_eq!(
            found(&[w]),
            1,
            "without a namespace, every series is looked at"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        use crate::profile::{Latency, Profile, VersionProfile};
        let c = reviews_cluster();
        let r = Router::default();
        let run = |seed: u64| {
            let mut t = reviews_traffic(seed, 50.0);
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
            t.advance(SimTime::from_secs(20), &c, &r);
            // Every request, however late it completes.
            t.series()[0].totals(SimTime::ZERO, SimTime::from_secs(100_000))
        };
        let (a, b) = (run(7), run(7));
        assert_eq!(a, b);
        assert_eq!(a.latency_sum_ms.to_bits(), b.latency_sum_ms.to_bits());
        assert_eq!(a.requests, 1_000);
        assert!(
            (200..400).contains(&a.errors),
            "{} errors of 1,000 at 30%",
            a.errors
        );
        assert_ne!(run(8), a, "another seed, other draws");
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
