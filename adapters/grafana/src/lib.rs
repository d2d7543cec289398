//! iter8 adapter for grafana (being built).
