//! Traffic profiles: how many requests arrive and how each version answers them (latency
//! distribution, error probability, extra metric values). Read from YAML; see
//! `docs/simulation.md` for the format.

use std::collections::BTreeMap;

use rand_distr::{Bernoulli, Distribution, LogNormal, Uniform};
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
    /// The distribution, ready to draw from (its parameters computed once).
    pub fn distribution(&self) -> LatencyDistribution {
        match *self {
            Latency::Fixed { ms, jitter_ms } => {
                match Uniform::new_inclusive(ms - jitter_ms, ms + jitter_ms) {
                    Ok(uniform) if jitter_ms > 0.0 => LatencyDistribution::Uniform(uniform),
                    _ => LatencyDistribution::Fixed(ms),
                }
            }
            Latency::Lognormal { median_ms, sigma } => {
                match LogNormal::new(median_ms.ln(), sigma) {
                    Ok(lognormal) if sigma > 0.0 => LatencyDistribution::LogNormal(lognormal),
                    _ => LatencyDistribution::Fixed(median_ms),
                }
            }
        }
    }
}

/// A [`Latency`] ready to draw from: rand_distr's distributions (values [`Profile::check`]
/// rejects, which no profile read from YAML has, fall back to a fixed latency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyDistribution {
    /// Always the same latency.
    Fixed(f64),
    /// Uniform jitter around a latency.
    Uniform(Uniform<f64>),
    /// Log-normal, parameterised by the logarithm's mean (the median's logarithm) and spread.
    LogNormal(LogNormal<f64>),
}

impl Distribution<f64> for LatencyDistribution {
    fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            LatencyDistribution::Fixed(ms) => *ms,
            LatencyDistribution::Uniform(d) => d.sample(rng).max(0.0),
            LatencyDistribution::LogNormal(d) => d.sample(rng),
        }
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

    /// Whether a request fails, as a distribution (an error rate [`Profile::check`] rejects
    /// counts as no errors).
    pub fn errors(&self) -> Bernoulli {
        Bernoulli::new(self.error_rate).unwrap_or(Bernoulli::new(0.0).expect("0 is a probability"))
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
        }
        .distribution();
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
    fn fixed_latencies_stay_within_their_jitter() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let jitter = Latency::Fixed {
            ms: 5000.0,
            jitter_ms: 100.0,
        }
        .distribution();
        let xs: Vec<f64> = (0..1_000).map(|_| jitter.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (4900.0..=5100.0).contains(x)));
        assert!(xs.iter().any(|x| *x < 4950.0) && xs.iter().any(|x| *x > 5050.0));
        for latency in [
            Latency::Fixed {
                ms: 10.0,
                jitter_ms: 0.0,
            },
            Latency::Lognormal {
                median_ms: 10.0,
                sigma: 0.0,
            },
        ] {
            assert_eq!(latency.distribution(), LatencyDistribution::Fixed(10.0));
        }
    }
}
