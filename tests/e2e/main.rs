//! End-to-end tests of pullgate with real nginx, docker-registry, a token
//! server and real clients (skopeo, podman, ctr, docker, curl).
//!
//! Upstreams start once in `main` and stop when the run ends; each test
//! starts its own gateway (`pullgate up`) so its access log is its own.
//! A component that cannot be started fails every test that needs it.

mod cases;
mod support;
mod world;

use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use world::World;

fn main() {
    let args = Arguments::from_args();
    // Tests that need no upstream run even if the world cannot start.
    let mut trials: Vec<Trial> =
        cases::standalone().into_iter().map(|(name, f)| Trial::test(name, move || f().map_err(Failed::from))).collect();
    let needs_world = cases::with_world();
    let wanted = needs_world.iter().any(|(name, _)| args.filter.as_deref().is_none_or(|f| name.contains(f)));
    let world = if wanted && !args.list { Some(World::start().map(Arc::new)) } else { None };
    for (name, case) in needs_world {
        let world = world.clone();
        trials.push(Trial::test(name, move || match world {
            Some(Ok(w)) => case(&w).map_err(Failed::from),
            Some(Err(e)) => Err(Failed::from(format!("the test upstreams could not start: {e}"))),
            None => Err(Failed::from("not started")),
        }));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(world);
    conclusion.exit();
}
