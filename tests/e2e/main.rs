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
    // Tests with a time bound run last, one at a time, so that a failure
    // means the product was slow, not that wrk or a 100 MB download beside
    // it took the two cores.
    let (serial, parallel): (Vec<Trial>, Vec<Trial>) = trials.into_iter().partition(|t| cases::timed(t.name()));
    assert_eq!(serial.len(), cases::TIMED.len(), "a name in cases::TIMED names no test");
    let mut conclusion = libtest_mimic::run(&args, parallel);
    if !args.list {
        eprintln!(
            "\nthe {} tests with a time bound, one at a time:",
            serial.iter().filter(|t| args.filter.as_deref().is_none_or(|f| t.name().contains(f))).count()
        );
    }
    let serial_args = Arguments { test_threads: Some(1), ..args };
    let timed = libtest_mimic::run(&serial_args, serial);
    drop(world);
    conclusion.num_passed += timed.num_passed;
    conclusion.num_failed += timed.num_failed;
    conclusion.num_ignored += timed.num_ignored;
    conclusion.num_filtered_out += timed.num_filtered_out;
    conclusion.num_measured += timed.num_measured;
    if !args.list {
        // One closing line for the whole run.
        println!(
            "{} passed, {} failed{}",
            conclusion.num_passed,
            conclusion.num_failed,
            if conclusion.num_ignored > 0 { format!(", {} skipped", conclusion.num_ignored) } else { String::new() }
        );
    }
    conclusion.exit();
}
