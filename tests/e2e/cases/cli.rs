//! `pullgate validate` and friends, as a user runs them.

use super::Standalone;

pub fn tests() -> Vec<(String, Standalone)> {
    Vec::new()
}
