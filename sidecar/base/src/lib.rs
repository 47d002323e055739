//! Small things every pullgate stage shares, each in one place: the clock,
//! durable file replacement, and the Prometheus text format.
//!
//! Depends on nothing of pullgate's; everything else may depend on it.

pub mod clock;
pub mod fs;
pub mod metrics;
