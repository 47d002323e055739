//! Helpers live in e2e/ for now.
