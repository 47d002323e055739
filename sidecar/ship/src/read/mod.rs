//! Reading the access log: follow the file through rotation, parse each
//! line as schema v1.

pub mod record;
pub mod rotate;
pub mod tail;
