//! What a version of the service does: how long it takes and whether it fails.

use std::time::Duration;

/// Why a version or a duration flag was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BehaviorError {
    /// The version is not one of the tutorial's.
    #[error("unknown version `{0}`: expected v2, v3, v4, v5 or v6 (optionally as reviews-vN)")]
    UnknownVersion(String),
    /// A duration flag could not be read.
    #[error("bad duration `{0}`: expected e.g. 3ms, 500ms, 5s")]
    BadDuration(String),
}

/// How one version answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behavior {
    /// Time spent before answering.
    pub latency: Duration,
    /// Whether every request fails with HTTP 500.
    pub fails: bool,
}

/// The latency of the healthy versions.
pub const HEALTHY_LATENCY: Duration = Duration::from_millis(3);
/// The latency of the slow version (v4), as in the tutorial.
pub const SLOW_LATENCY: Duration = Duration::from_secs(5);

impl Behavior {
    /// The tutorial's behaviour of a version (`v4` or `reviews-v4`).
    pub fn of(version: &str) -> Result<Behavior, BehaviorError> {
        let short = version.strip_prefix("reviews-").unwrap_or(version);
        let healthy = Behavior {
            latency: HEALTHY_LATENCY,
            fails: false,
        };
        match short {
            "v1" | "v2" | "v3" | "v6" => Ok(healthy),
            "v4" => Ok(Behavior {
                latency: SLOW_LATENCY,
                fails: false,
            }),
            "v5" => Ok(Behavior {
                latency: HEALTHY_LATENCY,
                fails: true,
            }),
            _ => Err(BehaviorError::UnknownVersion(version.to_string())),
        }
    }

    /// The same behaviour with another latency.
    pub fn with_latency(mut self, latency: Duration) -> Behavior {
        self.latency = latency;
        self
    }
}

/// Reads `3ms`, `500ms`, `5s` or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, BehaviorError> {
    let bad = || BehaviorError::BadDuration(text.to_string());
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || !(0.0..=3600.0).contains(&value) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_versions_behave_as_in_the_tutorial() {
        assert_eq!(Behavior::of("v3").unwrap().latency, HEALTHY_LATENCY);
        assert_eq!(Behavior::of("reviews-v4").unwrap().latency, SLOW_LATENCY);
        assert!(Behavior::of("v5").unwrap().fails);
        assert!(!Behavior::of("reviews-v6").unwrap().fails);
        assert!(matches!(
            Behavior::of("v7"),
            Err(BehaviorError::UnknownVersion(_))
        ));
    }

    #[test]
    fn durations_are_read_in_ms_and_s() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
