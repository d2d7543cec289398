//! Choosing the window of a retrospective analysis (`iter8 analyze --from/--to/--last`).

use chrono::{DateTime, Utc};
use iter8_core::duration::parse_go;
use iter8_core::measurement::Window;

/// Why a window could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A time is neither RFC 3339 nor Unix seconds.
    #[error(
        "{flag} `{text}`: not a time (use RFC 3339 like 2024-01-01T00:00:00Z, Unix seconds, or `now`)"
    )]
    BadTime {
        /// The flag.
        flag: &'static str,
        /// What was given.
        text: String,
    },
    /// A duration is not a positive Go duration.
    #[error("--last `{0}`: not a positive duration (e.g. 30m, 1h30m, 90s)")]
    BadDuration(String),
    /// The window starts after it ends.
    #[error("the window starts ({start}) after it ends ({end})")]
    StartAfterEnd {
        /// Start.
        start: String,
        /// End.
        end: String,
    },
}

/// A point in time (UTC).
pub type Time = DateTime<Utc>;

/// The current time (the CLI's `now`).
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Parses `now`, an RFC 3339 time, or Unix seconds (`1704067200`, `1704067200.5`).
pub fn parse_time(
    flag: &'static str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, WindowError> {
    let t = text.trim();
    let bad = || WindowError::BadTime {
        flag,
        text: text.to_string(),
    };
    if t == "now" {
        return Ok(now);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let secs: f64 = t.parse().map_err(|_| bad())?;
    if !secs.is_finite() {
        return Err(bad());
    }
    let millis = (secs * 1000.0).round() as i64;
    DateTime::from_timestamp_millis(millis).ok_or_else(bad)
}

/// The window `[end - last, end]` for a Go duration such as `30m`.
pub fn last(duration: &str, end: DateTime<Utc>) -> Result<Window, WindowError> {
    let d = parse_go(duration)
        .ok()
        .filter(|d| !d.is_zero())
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .ok_or_else(|| WindowError::BadDuration(duration.to_string()))?;
    Ok(Window {
        start: end - d,
        end,
    })
}

/// The window `[start, end]`, checked.
pub fn between(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Window, WindowError> {
    if start > end {
        return Err(WindowError::StartAfterEnd {
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
        });
    }
    Ok(Window { start, end })
}

/// Formats a time as RFC 3339 with seconds (`2024-01-01T00:00:00Z`).
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        let now = DateTime::from_timestamp(1_704_067_200, 0).unwrap();
        assert_eq!(parse_time("--to", "now", now), Ok(now));
        assert_eq!(parse_time("--to", "2024-01-01T00:00:00Z", now), Ok(now));
        assert_eq!(
            parse_time("--to", "2024-01-01T01:00:00+01:00", now),
            Ok(now)
        );
        assert_eq!(parse_time("--to", "1704067200", now), Ok(now));
        assert_eq!(
            parse_time("--to", "1704067200.5", now)
                .unwrap()
                .timestamp_millis(),
            1_704_067_200_500
        );
        assert!(
            parse_time("--from", "yesterday", now)
                .unwrap_err()
                .to_string()
                .starts_with("--from `yesterday`")
        );
        let w = last("30m", now).unwrap();
        assert_eq!(w.interval_secs(), 1800);
        assert!(last("0s", now).is_err());
        assert!(last("soon", now).is_err());
        assert!(between(now, now - chrono::Duration::seconds(1)).is_err());
        assert_eq!(format(now), "2024-01-01T00:00:00Z");
    }
}
