//! The OpenAPI document of the API, served at `/api/openapi.json`; a test
//! keeps its paths and the server's the same.

use serde_json::{json, Value};

fn view_parameters() -> Vec<Value> {
    let q = |name: &str, description: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": description});
    let mut p = vec![
        q("range", "24h, 7d, 30d (the default) or 12m, ending with the current hour"),
        q("since", "instead of range: a date, a UTC time (2026-11-01T12:00) or a span back from now (30d, 12h)"),
        q("until", "with since: the end, exclusive (default: the end of the current hour)"),
        q("granularity", "hour, day, week, month or total"),
    ];
    for d in crate::params::FILTERS {
        p.push(q(d.name(), "only what has this value"));
    }
    p
}

fn counters() -> Value {
    let n = json!({"type": "integer", "minimum": 0});
    json!({"type": "object", "required": pullgate_analytics::query::COUNTERS, "properties": {
        "requests": n, "pulls": n, "version_checks": n, "downloads": n, "unique_origins": n, "unique_ips": n}})
}

pub fn document() -> Value {
    let mut report_params = view_parameters();
    report_params.push(json!({"name": "by", "in": "query", "required": false, "schema": {"type": "string"},
        "description": "dimensions, comma-separated: route, repository, tag, client, client_version, os, arch, country, asn, as_org, cloud, weekday, hour, digest, class, poller"}));
    report_params.push(json!({"name": "top", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}, "description": "only the N rows most used: the most pulls (for files, downloads)"}));
    let report = json!({"type": "object", "required": ["totals", "rows", "concentration"], "properties": {
        "totals": counters(),
        "rows": {"type": "array", "items": {"type": "object", "description": "the dimensions asked for (period first), then the counters", "additionalProperties": true}},
        "concentration": {"type": "object", "properties": {
            "origins": {"type": "integer"}, "top_1_percent": {"type": "number"}, "top_10": {"type": "number"}, "top_20": {"type": "number"}}}}});
    let bad = json!({"description": "a parameter that is not understood", "content": {"text/plain": {}}});
    let denied = json!({"description": "the dashboard has a token and the request does not carry it", "content": {"text/plain": {}}});
    json!({
        "openapi": "3.0.3",
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer", "description": "when the dashboard has a token (needed to listen beyond loopback)"}}},
        "info": {"title": "pullgate dashboard", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Pulls, version checks, downloads and unique origins (docs/analytics.md, docs/report.md)."},
        "paths": {
            "/": {"get": {"summary": "The overview page", "parameters": view_parameters(),
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}, "400": bad, "401": denied}}},
            "/api/report": {"get": {"summary": "A report, as `pullgate report --format json` gives it", "parameters": report_params,
                "responses": {"200": {"description": "the report", "content": {"application/json": {"schema": report}}}, "400": bad, "401": denied}}},
            "/api/report.csv": {"get": {"summary": "The same report as CSV with a header row", "parameters": report_params,
                "responses": {"200": {"description": "CSV", "content": {"text/csv": {}}}, "400": bad, "401": denied}}},
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {}}}, "401": denied}}},
            "/badge/{repository}/{metric}": {"get": {"summary": "A shields-style badge for a repository routes.yaml serves",
                "parameters": [
                    {"name": "repository", "in": "path", "required": true, "schema": {"type": "string"}, "example": "acme/app", "description": "e.g. acme/app (slashes kept)"},
                    {"name": "metric", "in": "path", "required": true, "schema": {"type": "string", "enum": ["pulls.svg", "downloads.svg", "unique.svg"]}},
                    {"name": "period", "in": "query", "required": false, "schema": {"type": "string", "enum": ["24h", "7d", "30d", "12m"]}}],
                "responses": {"200": {"description": "SVG, cacheable for 5 minutes", "content": {"image/svg+xml": {}}},
                              "400": bad,
                              "404": {"description": "not a repository routes.yaml serves, or not a metric"}}}},
            "/login": {"get": {"summary": "With the dashboard's token: a cookie for the browser, then the overview",
                "parameters": [{"name": "token", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": {"303": {"description": "to the overview"}, "401": {"description": "not the token"}}}},
            "/favicon.ico": {"get": {"summary": "Nothing: browsers ask for it", "responses": {"204": {"description": "no content"}}}},
            "/healthz": {"get": {"summary": "Whether the analytics store answers (for healthchecks; no token needed)",
                "responses": {"200": {"description": "ok", "content": {"text/plain": {}}},
                    "503": {"description": "the store does not answer", "content": {"text/plain": {}}}}}},
            "/metrics": {"get": {"summary": "Pulls, version checks and downloads by repository since the store began (Prometheus text)",
                "responses": {"200": {"description": "Prometheus exposition format", "content": {"text/plain": {}}}, "401": denied}}}
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_lists_exactly_the_served_paths() {
        let doc = super::document();
        let mut listed: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut served = crate::server::PATHS.to_vec();
        listed.sort_unstable();
        served.sort_unstable();
        assert_eq!(listed, served);
    }
}
