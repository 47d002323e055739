//! Real components for the end-to-end tests, and small helpers around them.

pub mod clients;
pub mod gateway;
pub mod load;
pub mod oci;
pub mod plain_nginx;
pub mod process;
pub mod redis;
pub mod registry;
pub mod token_server;

/// Fail a test with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
