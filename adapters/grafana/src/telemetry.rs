//! Which Istio telemetry the metrics come from: v1 (Mixer) or v2 (Envoy stats).

use std::fmt;
use std::str::FromStr;

use iter8_core::MetricsConfig;

/// The Istio telemetry generation whose Prometheus series the dashboard queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Telemetry {
    /// Mixer telemetry: job `istio-mesh`, durations in seconds.
    V1,
    /// Envoy stats (Istio 1.5+): job `envoy-stats`, durations in milliseconds (the default).
    #[default]
    V2,
}

/// A telemetry name that is neither `v1` nor `v2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Istio telemetry `{0}`: expected `v1` or `v2`")]
pub struct UnknownTelemetry(pub String);

impl Telemetry {
    /// The Prometheus `job` label of Istio's series.
    pub fn job(self) -> &'static str {
        match self {
            Telemetry::V1 => "istio-mesh",
            Telemetry::V2 => "envoy-stats",
        }
    }

    /// The request-duration metric family prefix (`..._sum`, `..._count`, `..._bucket`).
    pub fn duration_metric(self) -> &'static str {
        match self {
            Telemetry::V1 => "istio_request_duration_seconds",
            Telemetry::V2 => "istio_request_duration_milliseconds",
        }
    }

    /// The factor that turns the duration metric's unit into milliseconds.
    pub fn to_millis(self) -> u32 {
        match self {
            Telemetry::V1 => 1000,
            Telemetry::V2 => 1,
        }
    }

    /// The stock metrics configuration of this telemetry.
    pub fn stock_metrics(self) -> MetricsConfig {
        match self {
            Telemetry::V1 => MetricsConfig::stock_telemetry_v1(),
            Telemetry::V2 => MetricsConfig::stock_telemetry_v2(),
        }
    }

    /// The tutorial's extended configuration (stock metrics plus `iter8_90_perc_latency`).
    pub fn extended_metrics(self) -> MetricsConfig {
        let text = match self {
            Telemetry::V1 => iter8_core::metrics_config::EXTENDED_TELEMETRY_V1,
            Telemetry::V2 => iter8_core::metrics_config::EXTENDED_TELEMETRY_V2,
        };
        MetricsConfig::from_configmap_yaml(text).unwrap_or_else(|_| self.stock_metrics())
    }

    /// Guesses the telemetry a metrics configuration was written for, from the job and duration
    /// metric its templates name; `None` when they name neither (or both).
    pub fn detect(config: &MetricsConfig) -> Option<Telemetry> {
        let mentions = |t: Telemetry| {
            config.query_templates.values().any(|q| {
                q.contains(t.duration_metric())
                    || q.contains(&format!("'{}'", t.job()))
                    || q.contains(&format!("\"{}\"", t.job()))
            })
        };
        match (mentions(Telemetry::V1), mentions(Telemetry::V2)) {
            (true, false) => Some(Telemetry::V1),
            (false, true) => Some(Telemetry::V2),
            _ => None,
        }
    }
}

impl fmt::Display for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Telemetry::V1 => "v1",
            Telemetry::V2 => "v2",
        })
    }
}

impl FromStr for Telemetry {
    type Err = UnknownTelemetry;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(Telemetry::V1),
            "v2" | "2" => Ok(Telemetry::V2),
            _ => Err(UnknownTelemetry(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_stock_configurations() {
        assert_eq!(
            Telemetry::detect(&MetricsConfig::stock_telemetry_v1()),
            Some(Telemetry::V1)
        );
        assert_eq!(
            Telemetry::detect(&MetricsConfig::stock_telemetry_v2()),
            Some(Telemetry::V2)
        );
        assert_eq!(
            Telemetry::detect(&Telemetry::V1.extended_metrics()),
            Some(Telemetry::V1)
        );
        assert_eq!(Telemetry::detect(&MetricsConfig::default()), None);
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!("v1".parse::<Telemetry>(), Ok(Telemetry::V1));
        assert_eq!("V2".parse::<Telemetry>(), Ok(Telemetry::V2));
        let err = "v3".parse::<Telemetry>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown Istio telemetry `v3`: expected `v1` or `v2`"
        );
        assert_eq!(Telemetry::V1.to_string(), "v1");
        assert_eq!(Telemetry::default(), Telemetry::V2);
    }
}
