//! A small deterministic random number generator for the Bayesian strategies: xoshiro256**
//! seeded through SplitMix64, with uniform, Gaussian, Gamma and Beta sampling.
//!
//! The core takes no randomness it is not given: every draw comes from a [`Rng`] built from a
//! seed in the request, so the same seed and inputs give the same decision. Sampling uses only
//! `f64` arithmetic and `ln`/`sqrt`/`cos`/`powf` from `std`, so results are reproducible on a
//! given platform (libm implementations may differ in the last bit between platforms).

/// One step of SplitMix64: advances `state` and returns a well-mixed 64-bit value.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna), seeded with SplitMix64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform draw in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw in `(0, 1)` (never exactly 0 or 1).
    pub fn open_uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box-Muller; one draw per call).
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = self.open_uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A normal draw with mean `mean` and standard deviation `sd`.
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        mean + sd * self.standard_normal()
    }

    /// A Gamma(shape, 1) draw (Marsaglia and Tsang); `shape` must be positive and finite
    /// (otherwise the draw is 0).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if !(shape > 0.0 && shape.is_finite()) {
            return 0.0;
        }
        if shape < 1.0 {
            // Gamma(a) = Gamma(a + 1) * U^(1/a).
            let u = self.open_uniform();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let (x, v) = loop {
                let x = self.standard_normal();
                let v = 1.0 + c * x;
                if v > 0.0 {
                    break (x, v * v * v);
                }
            };
            let u = self.open_uniform();
            if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
    }

    /// A Beta(alpha, beta) draw in `[0, 1]`, from two Gamma draws. Non-positive parameters
    /// give the mean of what is left (or 0.5).
    pub fn beta(&mut self, alpha: f64, beta: f64) -> f64 {
        let x = self.gamma(alpha);
        let y = self.gamma(beta);
        if x + y > 0.0 {
            x / (x + y)
        } else if alpha + beta > 0.0 && (alpha + beta).is_finite() {
            (alpha / (alpha + beta)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::seed_from_u64(42);
        let mut b = Rng::seed_from_u64(42);
        let mut c = Rng::seed_from_u64(43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn splitmix_matches_the_reference() {
        // Reference values of SplitMix64 from seed 0 (Vigna's splitmix64.c).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::seed_from_u64(7);
        let u: Vec<f64> = (0..50_000).map(|_| r.uniform()).collect();
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        let (m, v) = mean_var(&u);
        assert!(
            (m - 0.5).abs() < 0.01 && (v - 1.0 / 12.0).abs() < 0.005,
            "{m} {v}"
        );

        let n: Vec<f64> = (0..50_000).map(|_| r.normal(3.0, 2.0)).collect();
        let (m, v) = mean_var(&n);
        assert!((m - 3.0).abs() < 0.05 && (v - 4.0).abs() < 0.15, "{m} {v}");

        for shape in [0.3, 1.0, 2.5, 40.0] {
            let g: Vec<f64> = (0..50_000).map(|_| r.gamma(shape)).collect();
            let (m, v) = mean_var(&g);
            assert!(
                (m - shape).abs() < 0.05 * shape.max(1.0)
                    && (v - shape).abs() < 0.1 * shape.max(1.0),
                "gamma({shape}): {m} {v}"
            );
        }

        let (a, b) = (2.0, 5.0);
        let bs: Vec<f64> = (0..50_000).map(|_| r.beta(a, b)).collect();
        assert!(bs.iter().all(|x| (0.0..=1.0).contains(x)));
        let (m, v) = mean_var(&bs);
        let (em, ev) = (a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1.0)));
        assert!((m - em).abs() < 0.01 && (v - ev).abs() < 0.003, "{m} {v}");
    }

    #[test]
    fn degenerate_parameters_do_not_panic_or_loop() {
        let mut r = Rng::seed_from_u64(1);
        assert_eq!(r.gamma(0.0), 0.0);
        assert_eq!(r.gamma(f64::NAN), 0.0);
        assert_eq!(r.beta(0.0, 0.0), 0.5);
        assert_eq!(r.beta(-1.0, f64::INFINITY), 0.5);
    }
}
