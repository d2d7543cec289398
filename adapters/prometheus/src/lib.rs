//! iter8 adapter for prometheus (being built).
