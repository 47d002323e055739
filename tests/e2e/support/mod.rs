//! Real components for the end-to-end tests, and small helpers around them.

pub mod browser;
pub mod clickhouse;
pub mod clients;
pub mod fake_cloudwatch;
pub mod gateway;
pub mod load;
pub mod moto;
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

/// Poll until `cond` holds; how long it took. `what` names it in the error.
pub fn wait_until(
    limit: std::time::Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<bool, String>,
) -> Result<std::time::Duration, String> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond()? {
            return Ok(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err(format!("{what}: not within {limit:?}"))
}

/// Whether to rewrite golden files: `UPDATE_GOLDEN=1` exactly. Any other
/// value is a mistake said as one, not a silent rewrite (`.ci/run` refuses
/// the variable altogether).
pub fn update_golden() -> Result<bool, String> {
    match std::env::var("UPDATE_GOLDEN") {
        Err(std::env::VarError::NotPresent) => Ok(false),
        Ok(v) if v == "1" => Ok(true),
        Ok(v) => Err(format!("UPDATE_GOLDEN={v:?}: set it to 1 to rewrite the golden files, or unset it")),
        Err(e) => Err(format!("UPDATE_GOLDEN: {e}")),
    }
}
