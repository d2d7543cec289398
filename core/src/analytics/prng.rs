//! The random numbers of the Bayesian strategies: ChaCha8 (the `rand` family the simulation
//! draws from too) and rand_distr's Beta and Normal distributions.
//!
//! The core takes no randomness it is not given: every draw comes from a [`Rng`] built from a
//! seed in the request, so the same seed and inputs give the same decision.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Normal};

/// The generator: ChaCha8, whose streams are reproducible across platforms and versions.
pub type Rng = ChaCha8Rng;

/// The generator of one call of a strategy: the request's `seed`, and a stream of its own for
/// each `call` (so that successive calls with one seed draw different numbers).
pub fn for_call(seed: u64, call: u64) -> Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(call);
    rng
}

/// A Beta(alpha, beta) draw in `[0, 1]`. Parameters that are not positive and finite give the
/// mean of what is left (or 0.5).
pub fn beta(rng: &mut Rng, alpha: f64, beta: f64) -> f64 {
    match Beta::new(alpha, beta) {
        Ok(d) => d.sample(rng),
        Err(_) if alpha + beta > 0.0 && (alpha + beta).is_finite() => {
            (alpha / (alpha + beta)).clamp(0.0, 1.0)
        }
        Err(_) => 0.5,
    }
}

/// A normal draw with mean `mean` and standard deviation `sd`; an `sd` that is negative or not
/// finite gives `mean`.
pub fn normal(rng: &mut Rng, mean: f64, sd: f64) -> f64 {
    match Normal::new(mean, sd) {
        Ok(d) if sd >= 0.0 && sd.is_finite() => d.sample(rng),
        _ => mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn same_seed_and_call_same_stream() {
        let draws = |seed, call| -> Vec<u64> {
            let mut r = for_call(seed, call);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(draws(42, 0), draws(42, 0));
        assert_ne!(draws(42, 0), draws(43, 0), "another seed");
        assert_ne!(draws(42, 0), draws(42, 1), "another call");
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = for_call(7, 0);
        let n: Vec<f64> = (0..50_000).map(|_| normal(&mut r, 3.0, 2.0)).collect();
        let (m, v) = mean_var(&n);
        assert!((m - 3.0).abs() < 0.05 && (v - 4.0).abs() < 0.15, "{m} {v}");

        let (a, b) = (2.0, 5.0);
        let bs: Vec<f64> = (0..50_000).map(|_| beta(&mut r, a, b)).collect();
        assert!(bs.iter().all(|x| (0.0..=1.0).contains(x)));
        let (m, v) = mean_var(&bs);
        let (em, ev) = (a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1.0)));
        assert!((m - em).abs() < 0.01 && (v - ev).abs() < 0.003, "{m} {v}");
    }

    #[test]
    fn degenerate_parameters_do_not_panic_or_loop() {
        let mut r = for_call(1, 0);
        assert_eq!(beta(&mut r, 0.0, 0.0), 0.5);
        assert_eq!(beta(&mut r, -1.0, f64::INFINITY), 0.5);
        assert_eq!(beta(&mut r, 0.0, 5.0), 0.0);
        assert_eq!(normal(&mut r, 3.0, -1.0), 3.0);
        assert_eq!(normal(&mut r, 3.0, f64::NAN), 3.0);
        assert_eq!(normal(&mut r, 3.0, 0.0), 3.0);
    }
}
