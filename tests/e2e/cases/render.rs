//! Rendered config: golden files, determinism, hostile input.

use super::Standalone;

pub fn tests() -> Vec<(String, Standalone)> {
    Vec::new()
}
