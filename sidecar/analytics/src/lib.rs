//! Analytics: shipped events to pulls, version checks, downloads and unique
//! origins (DESIGN.md, "Analytics semantics"; docs/analytics.md).
//!
//! `request` says what one request is, `session` turns an origin's
//! requests for a repository into actions, `ua` names the client; a `Store`
//! keeps them (`sqlite`, the embedded one; `clickhouse`, for several
//! machines and ingesters) and answers `query::Query`s.
//! `ingest` reads the shipper's local sink into a store.

pub mod class;
mod clickhouse;
pub mod cloudwatch;
mod error;
mod event;
mod group;
pub mod ingest;
pub mod query;
pub mod sketch;
mod sqlite;
mod store;
pub mod time;
pub mod ua;

pub use clickhouse::{Account as ClickHouseAccount, Address as ClickHouseAddress, ClickHouse};
pub use error::AnalyticsError;
pub use event::Shipped;
pub(crate) use pullgate_ship::rules::{request, session};
pub use query::{Counters, Dim, Granularity, Query, Report};
pub use session::{sessionise, Action, ActionKind, Req};
pub use sqlite::Sqlite;
pub use store::{Ingested, Settings, Store};
