//! Go-style durations (`30s`, `1m30s`, `2h`, `500ms`), as Kubernetes manifests write them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// The string is not a Go duration.
    #[error("`{0}` is not a duration (expected e.g. 30s, 1m30s, 2h)")]
    Invalid(String),
    /// The duration is negative.
    #[error("`{0}` is negative")]
    Negative(String),
}

/// A duration as written in a manifest: kept as text so that an invalid value is reported by
/// validation (with its field path) rather than failing the whole parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoDuration(String);

impl GoDuration {
    /// Wraps text as written; see [`GoDuration::parse`] to read it.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The canonical Go spelling of a duration (`1m30s`, `2h`, `500ms`).
    pub fn from_std(d: Duration) -> Self {
        Self(format_go(d))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the text as a duration.
    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse_go(&self.0)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses Go's `time.ParseDuration` syntax: a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; `0` alone is allowed.
pub fn parse_go(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut nanos = int.checked_mul(unit_nanos).ok_or_else(invalid)?;
        // Fractions are exact to the nanosecond, as in Go.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(invalid)?;
        rest = tail;
    }
    if negative && total_nanos > 0 {
        return Err(DurationError::Negative(text.to_string()));
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// Formats a duration the short way Go users write it: `30s`, `1m30s`, `2h`, `1.5s`, `250ms`.
pub fn format_go(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    if d < Duration::from_secs(1) {
        let nanos = d.subsec_nanos();
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        let frac = format!("{:09}", nanos);
        out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
    } else if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_spellings() {
        assert_eq!(parse_go("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_go("2h0m0s"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_go("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go("1h1m1s1ms"), Ok(Duration::new(3661, 1_000_000)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "30", "s", "1x", "1.2.3s", "abc", "1m30", "-5s", "."] {
            assert!(parse_go(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn formats_like_manifests_are_written() {
        assert_eq!(format_go(Duration::from_secs(30)), "30s");
        assert_eq!(format_go(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go(Duration::from_secs(7200)), "2h");
        assert_eq!(format_go(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go(Duration::from_millis(250)), "250ms");
        assert_eq!(format_go(Duration::ZERO), "0s");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in 0u64..10_000_000_000_000) {
            let d = Duration::from_nanos(nanos);
            proptest::prop_assert_eq!(parse_go(&format_go(d)), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = parse_go(&s);
        }
    }
}
