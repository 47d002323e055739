//! The ClickHouse store's tables (docs/scale.md lists the SQL they need).
//! Plain MergeTree family engines and functions Debian's clickhouse-server
//! 18.16 has and current releases keep: ReplacingMergeTree with a custom
//! partition key, `FINAL`, `ARRAY JOIN`, `uniqCombined` states.
//!
//! Every table that several ingesters write dedupes by its sort key:
//! a request by its id (`requests`, `dnt`, `events`), a group by (day,
//! repository, origin) keeping the row computed from the most requests
//! (`groups`), an aggregate by its facet keeping the latest build (`agg*`).

/// The dimensions of an action, as the aggregate tables key them.
pub const FACETS: &str = "route String, repository String, tag String, digest String, client String, client_version String, \
     os String, arch String, country String, asn String, as_org String, cloud String, class String, poller String";

pub const FACET_COLUMNS: &str =
    "route, repository, tag, digest, client, client_version, os, arch, country, asn, as_org, cloud, class, poller";

/// Partitions of 32 days: old ones can be dropped whole once sealed.
const PARTITION: &str = "PARTITION BY intDiv(day, 32)";

/// The tables [`tables`] creates.
pub const NAMES: [&str; 10] = ["requests", "dnt", "events", "groups", "agg", "agg_dnt", "agg_requests", "agg_pulls", "seals", "cursors"];

pub fn tables() -> Vec<String> {
    vec![
        // Every request once, pings and 404s included: the requests total.
        format!(
            "CREATE TABLE IF NOT EXISTS requests (day Int64, hour Int64, route String, id String)
             ENGINE = ReplacingMergeTree {PARTITION} ORDER BY (day, id)"
        ),
        // Requests with DNT/GPC: what the shipper said each changed, no origin.
        format!(
            "CREATE TABLE IF NOT EXISTS dnt (day Int64, hour Int64, id String, {FACETS}, pulls Int8, checks Int8, downloads Int8)
             ENGINE = ReplacingMergeTree {PARTITION} ORDER BY (day, id)"
        ),
        // Counted requests by group: what a group is sessionised from.
        format!(
            "CREATE TABLE IF NOT EXISTS events (day Int64, repository String, origin UInt64, id String, ts_ms Int64, route String,
                kind UInt8, head UInt8, ref_kind UInt8, reference String, ua String, ip_origin UInt64,
                country String, asn String, as_org String, cloud String)
             ENGINE = ReplacingMergeTree {PARTITION} ORDER BY (day, repository, origin, id)"
        ),
        // One row per origin, repository and day: its actions, from `version` requests.
        format!(
            "CREATE TABLE IF NOT EXISTS groups (day Int64, repository String, origin UInt64, version UInt64, ip_origin UInt64,
                first_route String, pulls UInt32, client String, client_version String, os String, arch String, country String,
                asn String, as_org String, cloud String, class String, poller String,
                a_hour Array(Int64), a_kind Array(UInt8), a_download Array(UInt8), a_requests Array(UInt32),
                a_route Array(String), a_tag Array(String), a_digest Array(String))
             ENGINE = ReplacingMergeTree(version) {PARTITION} ORDER BY (day, repository, origin)"
        ),
        // Hourly aggregates per facet, unique origins and addresses as uniqCombined states.
        format!(
            "CREATE TABLE IF NOT EXISTS agg (day Int64, hour Int64, {FACETS}, build UInt64,
                pulls UInt64, checks UInt64, downloads UInt64, requests UInt64,
                origins AggregateFunction(uniqCombined, UInt64), ips AggregateFunction(uniqCombined, UInt64))
             ENGINE = ReplacingMergeTree(build) {PARTITION} ORDER BY (day, hour, {FACET_COLUMNS})"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS agg_dnt (day Int64, hour Int64, {FACETS}, build UInt64,
                pulls Int64, checks Int64, downloads Int64, requests Int64)
             ENGINE = ReplacingMergeTree(build) {PARTITION} ORDER BY (day, hour, {FACET_COLUMNS})"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS agg_requests (day Int64, hour Int64, route String, build UInt64, n UInt64)
             ENGINE = ReplacingMergeTree(build) {PARTITION} ORDER BY (day, hour, route)"
        ),
        // How many origins made N pulls (repository '': over all repositories).
        format!(
            "CREATE TABLE IF NOT EXISTS agg_pulls (day Int64, route String, repository String, client String, pulls UInt32,
                build UInt64, origins UInt64)
             ENGINE = ReplacingMergeTree(build) {PARTITION} ORDER BY (day, route, repository, client, pulls)"
        ),
        // The build each day's aggregates are read at (its highest).
        "CREATE TABLE IF NOT EXISTS seals (day Int64, build UInt64) ENGINE = ReplacingMergeTree(build) ORDER BY day".to_string(),
        "CREATE TABLE IF NOT EXISTS cursors (source String, position String, at UInt64)
         ENGINE = ReplacingMergeTree(at) ORDER BY source"
            .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_created_is_named() {
        let created: Vec<String> = super::tables()
            .iter()
            .map(|sql| sql.split_whitespace().nth(5).expect("CREATE TABLE IF NOT EXISTS name").trim_end_matches('(').to_string())
            .collect();
        assert_eq!(created, super::NAMES);
    }
}
