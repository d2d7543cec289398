//! iter8 adapter for istio (being built).
