//! # iter8-rand
//!
//! The random draws of the core's Bayesian strategies (its [`Randomness`] port) from the `rand`
//! family the simulation draws from too: ChaCha8 streams, whose numbers are the same on every
//! platform and version, and rand_distr's Beta and Normal distributions. Built without OS
//! entropy: every stream comes from the request's seed, so a decision can be reproduced.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use iter8_core::ports::{Draws, Randomness};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Normal};

/// Draws from ChaCha8 seeded by the request's seed, one stream per call.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChaCha;

impl Randomness for ChaCha {
    fn draws(&self, seed: u64, call: u64) -> Box<dyn Draws> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(call);
        Box::new(Stream(rng))
    }
}

/// One call's stream.
struct Stream(ChaCha8Rng);

impl Draws for Stream {
    // The core passes only parameters inside the port's contract (it handles the others
    // itself); what rand_distr would still reject gives a neutral value, never a panic.
    fn beta(&mut self, alpha: f64, beta: f64) -> f64 {
        match Beta::new(alpha, beta) {
            Ok(d) => d.sample(&mut self.0),
            Err(_) => 0.5,
        }
    }

    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        match Normal::new(mean, sd) {
            Ok(d) => d.sample(&mut self.0),
            Err(_) => mean,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64, call: u64) -> Vec<f64> {
        let mut d = ChaCha.draws(seed, call);
        (0..8).map(|_| d.normal(0.0, 1.0)).collect()
    }

    #[test]
    fn same_seed_and_call_same_draws() {
        assert_eq!(sample(42, 0), sample(42, 0));
        assert_ne!(sample(42, 0), sample(43, 0), "another seed");
        assert_ne!(sample(42, 0), sample(42, 1), "another call");
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut d = ChaCha.draws(7, 0);
        let n: Vec<f64> = (0..50_000).map(|_| d.normal(3.0, 2.0)).collect();
        let (m, v) = mean_var(&n);
        assert!((m - 3.0).abs() < 0.05 && (v - 4.0).abs() < 0.15, "{m} {v}");

        let (a, b) = (2.0, 5.0);
        let bs: Vec<f64> = (0..50_000).map(|_| d.beta(a, b)).collect();
        assert!(bs.iter().all(|x| (0.0..=1.0).contains(x)));
        let (m, v) = mean_var(&bs);
        let (em, ev) = (a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1.0)));
        assert!((m - em).abs() < 0.01 && (v - ev).abs() < 0.003, "{m} {v}");
    }

    #[test]
    fn parameters_rand_distr_rejects_give_a_neutral_value_not_a_panic() {
        let mut d = ChaCha.draws(1, 0);
        assert_eq!(d.beta(0.0, 5.0), 0.5);
        assert_eq!(d.beta(0.0, 0.0), 0.5);
        assert_eq!(d.normal(3.0, f64::NAN), 3.0);
    }
}
