//! The dashboard (`pullgate serve`): the page a maintainer opens every
//! morning, its JSON and CSV API, badges and Prometheus counters, all read
//! from the analytics store through the same query library as `pullgate
//! report`. Pages are rendered on the server (askama), charts drawn as SVG;
//! no script.
//!
//! `params` reads a view from the URL, `periods` names a range's periods,
//! `chart` holds the scales, `page` gathers the overview, `badge` draws
//! badges, `openapi` describes the API, `server` is the HTTP side.

pub mod badge;
pub mod chart;
mod countries;
pub mod openapi;
pub mod page;
pub mod params;
pub mod periods;
mod server;

pub use server::{router, serve, Dashboard, Served, PATHS};
