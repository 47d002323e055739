//! Small things every pullgate stage shares, each in one place: the clock,
//! durable file replacement, signalling the process of a pid file, and the
//! Prometheus text format.
//!
//! Depends on nothing of pullgate's; everything else may depend on it.

pub mod clock;
pub mod fs;
pub mod metrics;
pub mod process;
