//! Traffic profiles: how many requests arrive and how each version answers them (latency
//! distribution, error probability, extra metric values). Read from YAML; see
//! `docs/simulation.md` for the format.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// The request rate used when no profile gives one (the tutorial's `watch -n 0.1 curl`).
pub const DEFAULT_RATE: f64 = 10.0;

/// A profile that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    /// The text is not a profile document (YAML syntax, unknown field, wrong type).
    #[error("{source_name}: not a valid profile: {message}")]
    Syntax {
        /// Where the text came from (a file name).
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A field has a value the simulator cannot use.
    #[error("{source_name}: {field}: {problem}")]
    Invalid {
        /// Where the text came from (a file name).
        source_name: String,
        /// The field's path, e.g. `versions.reviews-v4.error_rate`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    /// A fixed latency with uniform jitter: `ms ± jitter_ms`.
    Fixed {
        /// The latency.
        ms: f64,
        /// Half-width of the uniform jitter around `ms`.
        #[serde(default)]
        jitter_ms: f64,
    },
    /// A log-normal latency: `median_ms × e^(sigma × Z)` with `Z` standard normal.
    Lognormal {
        /// The median latency.
        median_ms: f64,
        /// The spread (standard deviation of the logarithm); 0 is a fixed latency.
        sigma: f64,
    },
}

impl Latency {
    /// Draws one latency (never negative).
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Latency::Fixed { ms, jitter_ms } => {
                if jitter_ms == 0.0 {
                    ms
                } else {
                    (ms + jitter_ms * (2.0 * rng.random::<f64>() - 1.0)).max(0.0)
                }
            }
            Latency::Lognormal { median_ms, sigma } => {
                if sigma == 0.0 {
                    median_ms
                } else {
                    median_ms * (sigma * standard_normal(rng)).exp()
                }
            }
        }
    }

    /// The distribution's mean.
    pub fn mean(&self) -> f64 {
        match *self {
            Latency::Fixed { ms, .. } => ms,
            Latency::Lognormal { median_ms, sigma } => median_ms * (sigma * sigma / 2.0).exp(),
        }
    }
}

/// A latency distribution prepared for drawing millions of latencies from one uniform number
/// each. Log-normal quantiles are tabulated over the central 96% of the distribution (4,096
/// segments, interpolated linearly: within 1e-5 of the exact quantile, relatively, for
/// `sigma` up to 1, and 1e-4 up to 5) and computed exactly in the tails. Cloning shares the
/// table (32 KB).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler(SamplerKind);

#[derive(Debug, Clone, PartialEq)]
enum SamplerKind {
    Fixed(f64),
    Uniform {
        low: f64,
        width: f64,
    },
    Lognormal {
        median: f64,
        sigma: f64,
        table: Arc<[f64]>,
    },
}

/// The tabulated quantiles cover `u` in `[TAIL, 1 - TAIL)`.
const TAIL: f64 = 0.02;
const SEGMENTS: usize = 4096;

impl Sampler {
    /// Prepares a distribution.
    pub fn new(latency: &Latency) -> Self {
        Sampler(match *latency {
            Latency::Fixed { ms, jitter_ms: 0.0 } => SamplerKind::Fixed(ms),
            Latency::Fixed { ms, jitter_ms } => SamplerKind::Uniform {
                low: ms - jitter_ms,
                width: 2.0 * jitter_ms,
            },
            Latency::Lognormal {
                median_ms,
                sigma: 0.0,
            } => SamplerKind::Fixed(median_ms),
            Latency::Lognormal { median_ms, sigma } => {
                let step = (1.0 - 2.0 * TAIL) / SEGMENTS as f64;
                let table = (0..=SEGMENTS)
                    .map(|i| median_ms * (sigma * normal_quantile(TAIL + i as f64 * step)).exp())
                    .collect();
                SamplerKind::Lognormal {
                    median: median_ms,
                    sigma,
                    table,
                }
            }
        })
    }

    /// Whether a draw needs a random number (a fixed latency does not).
    #[inline]
    pub fn is_random(&self) -> bool {
        !matches!(self.0, SamplerKind::Fixed(_))
    }

    /// The latency at quantile `u` (in (0, 1)). Inlined: it is called once per request.
    #[inline]
    pub fn at(&self, u: f64) -> f64 {
        match &self.0 {
            SamplerKind::Fixed(ms) => *ms,
            SamplerKind::Uniform { low, width } => (low + width * u).max(0.0),
            SamplerKind::Lognormal {
                median,
                sigma,
                table,
            } => {
                let x = (u - TAIL) * (SEGMENTS as f64 / (1.0 - 2.0 * TAIL));
                if (0.0..SEGMENTS as f64).contains(&x) {
                    let i = x as usize;
                    let f = x - i as f64;
                    table[i] + f * (table[i + 1] - table[i])
                } else {
                    median * (sigma * normal_quantile(u)).exp()
                }
            }
        }
    }
}

/// One standard normal draw: the inverse normal CDF of one uniform draw in (0, 1). One draw
/// per latency and no trigonometry keeps request generation cheap (the simulator draws
/// millions per run).
fn standard_normal<R: rand::Rng + ?Sized>(rng: &mut R) -> f64 {
    // 53 random bits, centred in their interval: never 0 or 1, so the tails stay finite.
    let u = ((rng.random::<u64>() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
    normal_quantile(u)
}

/// The standard normal quantile `Φ⁻¹(p)` for `p` in (0, 1), by Acklam's rational
/// approximation (relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// How one version answers requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionProfile {
    /// The latency distribution.
    pub latency: Latency,
    /// Probability that a request fails with an HTTP 5xx (0 to 1).
    #[serde(default)]
    pub error_rate: f64,
    /// Values of metrics the simulator cannot derive from requests (business metrics, ...):
    /// metric name -> value reported for this version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl VersionProfile {
    /// A version answering in a fixed time without errors.
    pub fn fixed(ms: f64) -> Self {
        VersionProfile {
            latency: Latency::Fixed { ms, jitter_ms: 0.0 },
            error_rate: 0.0,
            metrics: BTreeMap::new(),
        }
    }

    /// Draws whether one request fails.
    pub fn sample_error<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> bool {
        sample_error(self.error_rate, rng)
    }
}

/// Draws whether one request fails with probability `error_rate` (consumes randomness only
/// when the outcome is uncertain).
pub fn sample_error<R: rand::Rng + ?Sized>(error_rate: f64, rng: &mut R) -> bool {
    if error_rate <= 0.0 {
        false
    } else if error_rate >= 1.0 {
        true
    } else {
        rng.random::<f64>() < error_rate
    }
}

/// A traffic profile: the request rate and the versions' behaviour.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Requests per second sent to the service under test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Version (Deployment) name -> how it answers.
    #[serde(default)]
    pub versions: BTreeMap<String, VersionProfile>,
}

impl Profile {
    /// Reads and checks a profile; `source_name` names it in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, ProfileError> {
        let profile: Profile = if text.trim().is_empty() {
            Profile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ProfileError::Syntax {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?
        };
        profile.check(source_name)?;
        Ok(profile)
    }

    /// Checks every number: a positive finite rate, probabilities in 0..=1, positive latencies.
    pub fn check(&self, source_name: &str) -> Result<(), ProfileError> {
        let invalid = |field: String, problem: String| ProfileError::Invalid {
            source_name: source_name.to_string(),
            field,
            problem,
        };
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(invalid(
                "rate".into(),
                format!("{rate} is not a positive number of requests per second"),
            ));
        }
        for (name, v) in &self.versions {
            let field = |f: &str| format!("versions.{name}.{f}");
            if !(0.0..=1.0).contains(&v.error_rate) {
                return Err(invalid(
                    field("error_rate"),
                    format!("{} is not a probability (0 to 1)", v.error_rate),
                ));
            }
            match v.latency {
                Latency::Fixed { ms, jitter_ms } => {
                    if !(ms.is_finite() && ms >= 0.0) {
                        return Err(invalid(
                            field("latency.fixed.ms"),
                            format!("{ms} is not a latency in milliseconds (>= 0)"),
                        ));
                    }
                    if !(jitter_ms.is_finite() && (0.0..=ms).contains(&jitter_ms)) {
                        return Err(invalid(
                            field("latency.fixed.jitter_ms"),
                            format!("{jitter_ms} must be between 0 and ms ({ms})"),
                        ));
                    }
                }
                Latency::Lognormal { median_ms, sigma } => {
                    if !(median_ms.is_finite() && median_ms > 0.0) {
                        return Err(invalid(
                            field("latency.lognormal.median_ms"),
                            format!("{median_ms} is not a positive latency in milliseconds"),
                        ));
                    }
                    if !(sigma.is_finite() && (0.0..=5.0).contains(&sigma)) {
                        return Err(invalid(
                            field("latency.lognormal.sigma"),
                            format!("{sigma} must be between 0 and 5"),
                        ));
                    }
                }
            }
            for (metric, value) in &v.metrics {
                if !value.is_finite() {
                    return Err(invalid(
                        field(&format!("metrics.{metric}")),
                        format!("{value} is not a finite number"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Adds another profile's versions (its entries win) and its rate (if it gives one).
    pub fn merge(&mut self, other: Profile) {
        if other.rate.is_some() {
            self.rate = other.rate;
        }
        self.versions.extend(other.versions);
    }

    /// The request rate, defaulted.
    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(DEFAULT_RATE)
    }

    /// The profile of a version, if given.
    pub fn version(&self, name: &str) -> Option<&VersionProfile> {
        self.versions.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reads_both_distributions() {
        let p = Profile::from_yaml(
            "rate: 5\nversions:\n  a:\n    latency:\n      lognormal: {median_ms: 40, sigma: 0.3}\n  b:\n    latency:\n      fixed: {ms: 5000, jitter_ms: 100}\n    error_rate: 1\n    metrics: {conversion: 0.2}\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(p.rate(), 5.0);
        assert_eq!(
            p.versions["a"].latency,
            Latency::Lognormal {
                median_ms: 40.0,
                sigma: 0.3
            }
        );
        assert_eq!(p.versions["b"].error_rate, 1.0);
        assert_eq!(p.versions["b"].metrics["conversion"], 0.2);
    }

    #[test]
    fn errors_name_the_field() {
        let err = Profile::from_yaml(
            "versions:\n  v4:\n    latency: {fixed: {ms: 10}}\n    error_rate: 1.5\n",
            "p.yaml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.yaml: versions.v4.error_rate: 1.5 is not a probability (0 to 1)"
        );
        let err = Profile::from_yaml("versions:\n  v4:\n    latncy: 3\n", "p.yaml").unwrap_err();
        assert!(err.to_string().contains("latncy"), "{err}");
        let err = Profile::from_yaml("rate: -1\n", "p.yaml").unwrap_err();
        assert!(err.to_string().contains("rate: -1"), "{err}");
    }

    #[test]
    fn lognormal_median_is_about_right() {
        let l = Latency::Lognormal {
            median_ms: 40.0,
            sigma: 0.5,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut xs: Vec<f64> = (0..10_001).map(|_| l.sample(&mut rng)).collect();
        xs.sort_by(f64::total_cmp);
        assert!((xs[5000] - 40.0).abs() < 2.0, "{}", xs[5000]);
        // About 10% above the p90, median × e^(0.5 × 1.2816).
        let p90 = 40.0 * (0.5f64 * 1.281_551_565_5).exp();
        let above = xs.iter().filter(|&&x| x > p90).count();
        assert!((900..1100).contains(&above), "{above}");
    }

    #[test]
    fn the_sampler_follows_the_exact_quantiles() {
        for sigma in [0.05, 0.3, 1.0] {
            let latency = Latency::Lognormal {
                median_ms: 40.0,
                sigma,
            };
            let sampler = Sampler::new(&latency);
            assert!(sampler.is_random());
            for k in 1..10_000 {
                let u = k as f64 / 10_000.0 + 1e-5;
                let exact = 40.0 * (sigma * normal_quantile(u)).exp();
                let got = sampler.at(u);
                assert!(
                    ((got - exact) / exact).abs() < 1e-5,
                    "sigma {sigma}, u {u}: {got} vs {exact}"
                );
            }
        }
        let jitter = Sampler::new(&Latency::Fixed {
            ms: 5000.0,
            jitter_ms: 100.0,
        });
        assert_eq!((jitter.at(0.0), jitter.at(0.5)), (4900.0, 5000.0));
        let fixed = Sampler::new(&Latency::Fixed {
            ms: 10.0,
            jitter_ms: 0.0,
        });
        assert!(!fixed.is_random());
        assert_eq!(fixed.at(0.3), 10.0);
    }

    #[test]
    fn normal_quantile_matches_the_tables() {
        for (p, z) in [
            (0.5, 0.0),
            (0.9, 1.281_551_565_545),
            (0.975, 1.959_963_984_540),
            (0.001, -3.090_232_306_168),
            (0.02, -2.053_748_910_631),
            (0.999_999, 4.753_424_308_823),
        ] {
            let got = normal_quantile(p);
            assert!((got - z).abs() < 1e-8, "Φ⁻¹({p}) = {got}, not {z}");
        }
    }
}
