//! Test cases, a module per area.

mod analytics;
mod artifacts;
mod cli;
mod compose;
mod dashboard;
mod fallback;
mod indexes;
mod live;
mod lua;
mod protocol;
mod pulls;
mod render;
mod scale;
mod ship;
mod sidecar;
mod upstream;

use crate::world::World;

pub type Standalone = fn() -> Result<(), String>;
pub type WithWorld = Box<dyn Fn(&World) -> Result<(), String> + Send + Sync>;

/// Tests that assert a time bound (an edit live within 1 s): they run
/// after the others, one at a time, so that nothing starves them.
pub fn timed(name: &str) -> bool {
    TIMED.contains(&name)
}

pub const TIMED: [&str; 7] = [
    "compose::kit_serves_pulls_tls_edits_and_restarts",
    "indexes::a_silent_upstream_holds_up_no_edit",
    "live::plain_write_serves_within_1s",
    "live::atomic_rename_serves_within_1s",
    "live::symlink_swap_serves_within_1s",
    "lua::three_nodes_follow_redis_without_reloads",
    "scale::three_nodes_one_store_a_node_lost_and_back",
];

/// Tests that need no upstream registry.
pub fn standalone() -> Vec<(String, Standalone)> {
    let mut v = Vec::new();
    v.extend(analytics::standalone());
    v.extend(cli::tests());
    v.extend(compose::tests());
    v.extend(dashboard::tests());
    v.extend(indexes::tests());
    v.extend(render::tests());
    v.extend(scale::tests());
    v
}

/// Tests that use the shared upstreams.
pub fn with_world() -> Vec<(String, WithWorld)> {
    let mut v = Vec::new();
    v.extend(analytics::tests());
    v.extend(artifacts::tests());
    v.extend(fallback::tests());
    v.extend(live::tests());
    v.extend(lua::tests());
    v.extend(protocol::tests());
    v.extend(pulls::tests());
    v.extend(ship::tests());
    v.extend(sidecar::tests());
    v.extend(upstream::tests());
    v.extend(scale::with_world());
    v
}
