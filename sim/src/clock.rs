//! Virtual time: milliseconds since a fixed epoch, so that runs are reproducible and nothing
//! ever sleeps.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// The wall-clock time virtual time 0 stands for (the month iter8 v0.2 came out).
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 5, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A point in virtual time: milliseconds since [`epoch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub i64);

impl SimTime {
    /// Virtual time 0.
    pub const ZERO: SimTime = SimTime(0);

    /// A time from whole seconds.
    pub fn from_secs(secs: i64) -> Self {
        SimTime(secs.saturating_mul(1000))
    }

    /// The time in milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The time in (fractional) seconds.
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The wall-clock time this stands for.
    pub fn to_datetime(self) -> DateTime<Utc> {
        epoch() + chrono::Duration::milliseconds(self.0)
    }

    /// The virtual time of a wall-clock time (rounded down to the millisecond).
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        SimTime((t - epoch()).num_milliseconds())
    }

    /// This time plus a duration (rounded up to the millisecond, at least 1 ms later for a
    /// non-zero duration).
    pub fn after(self, d: Duration) -> Self {
        let ms = d.as_nanos().div_ceil(1_000_000);
        SimTime(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// The duration from `earlier` to this time (zero when `earlier` is later).
    pub fn since(self, earlier: SimTime) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }
}

impl fmt::Display for SimTime {
    /// `m:ss` (or `h:mm:ss`), with milliseconds when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.max(0);
        let (secs, ms) = (total / 1000, total % 1000);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}:{m:02}:{s:02}")?;
        } else {
            write!(f, "{m}:{s:02}")?;
        }
        if ms > 0 {
            write!(f, ".{ms:03}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats() {
        let t = SimTime::from_secs(90);
        assert_eq!(SimTime::from_datetime(t.to_datetime()), t);
        assert_eq!(t.to_string(), "1:30");
        assert_eq!(SimTime(3_723_500).to_string(), "1:02:03.500");
        assert_eq!(t.after(Duration::from_micros(1)), SimTime(90_001));
        assert_eq!(SimTime(5).since(SimTime(10)), Duration::ZERO);
    }
}
