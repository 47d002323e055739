//! The HTTP side (axum): the overview page, the JSON and CSV API it and
//! scripts use, badges, and Prometheus counters. Every query runs on a
//! blocking thread against the one store connection.

use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pullgate_analytics::{Dim, Granularity, Store};

use crate::badge::{self, Metric};
use crate::page::{self, Overview};
use crate::params::View;

/// Which repositories routes.yaml serves: only they have badges.
pub type Served = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Dashboard {
    store: Mutex<Box<dyn Store + Send>>,
    served: Served,
    /// When set, every path but badges needs it.
    token: Option<String>,
}

impl Dashboard {
    pub fn new(store: Box<dyn Store + Send>, served: Served, token: Option<String>) -> Dashboard {
        Dashboard { store: Mutex::new(store), served, token }
    }
}

/// Every path the server answers, as the OpenAPI document lists them.
pub const PATHS: [&str; 9] = [
    "/",
    "/api/report",
    "/api/report.csv",
    "/api/openapi.json",
    "/badge/{repository}/{metric}",
    "/metrics",
    "/favicon.ico",
    "/login",
    "/healthz",
];

pub fn router(d: Arc<Dashboard>) -> Router {
    let private = Router::new()
        .route("/", get(overview))
        .route("/api/report", get(report_json))
        .route("/api/report.csv", get(report_csv))
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(d.clone(), require_token));
    Router::new()
        .merge(private)
        // Badges are for READMEs: public, whatever the token.
        .route("/badge/{*path}", get(badge_svg))
        .route("/login", get(login))
        // Browsers ask for it; nothing, rather than a 404 in their console.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        // For container healthchecks and load balancers: public, says nothing but whether the store answers.
        .route("/healthz", get(healthz))
        .with_state(d)
}

const COOKIE: &str = "pullgate_token";

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request carries: `Authorization: Bearer`, or the cookie `/login` set.
fn carried(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(b) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        return Some(b.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_string))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"pullgate\""), (header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "this dashboard needs its token: send `Authorization: Bearer TOKEN`, or open /login?token=TOKEN once in a browser\n",
    )
        .into_response()
}

async fn require_token(State(d): State<Arc<Dashboard>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match &d.token {
        Some(token) if !carried(req.headers()).is_some_and(|t| same(&t, token)) => unauthorized(),
        _ => next.run(req).await,
    }
}

/// `/login?token=TOKEN`: a cookie for the browser, then the overview.
async fn login(State(d): State<Arc<Dashboard>>, UrlQuery(pairs): Pairs) -> Response {
    let given = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str()).unwrap_or("");
    match &d.token {
        Some(token) if same(given, token) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (header::SET_COOKIE, format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")),
                (header::REFERRER_POLICY, "no-referrer".to_string()),
            ],
        )
            .into_response(),
        Some(_) => unauthorized(),
        None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
    }
}

/// Serve until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, d: Arc<Dashboard>) -> std::io::Result<()> {
    axum::serve(listener, router(d)).await
}

type Pairs = UrlQuery<Vec<(String, String)>>;

fn now_ms() -> i64 {
    pullgate_base::clock::now_ms() as i64
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Run `f` with the store on a blocking thread.
async fn with_store<T: Send + 'static>(
    d: Arc<Dashboard>,
    f: impl FnOnce(&mut dyn Store) -> Result<T, pullgate_analytics::AnalyticsError> + Send + 'static,
) -> Result<T, Response> {
    let joined = tokio::task::spawn_blocking(move || {
        let mut store = d.store.lock().unwrap_or_else(|p| p.into_inner());
        f(store.as_mut())
    })
    .await;
    match joined {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "dashboard query failed");
            Err(text(StatusCode::INTERNAL_SERVER_ERROR, format!("the analytics store failed: {e}\n")))
        }
        Err(_) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, "the query thread panicked\n".into())),
    }
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    o: Overview,
}

async fn overview(State(d): State<Arc<Dashboard>>, UrlQuery(pairs): Pairs) -> Response {
    let view = match View::parse(&pairs, now_ms()) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let o = match with_store(d, move |s| page::overview(s, &view)).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match (OverviewPage { o }).render() {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                // No script, no outside resource: the page is self-contained.
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"),
                ),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            ],
            html,
        )
            .into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the page: {e}\n")),
    }
}

/// The API's query: the view, plus `by` (dimensions, comma-separated),
/// `granularity` (also `total`) and `top`.
fn api_query(pairs: &[(String, String)]) -> Result<pullgate_analytics::Query, String> {
    let view = View::parse(pairs, now_ms())?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let by = match get("by") {
        Some(list) if !list.is_empty() => {
            list.split(',').map(|d| Dim::parse(d).ok_or_else(|| format!("by {d:?}: not a dimension"))).collect::<Result<Vec<_>, _>>()?
        }
        _ => Vec::new(),
    };
    let top = get("top").map(|n| n.parse::<usize>().map_err(|_| format!("top {n:?}: not a number"))).transpose()?;
    let granularity = if get("granularity").is_some() { view.granularity } else { Granularity::Total };
    Ok(view.query(granularity, by, top))
}

async fn report(d: Arc<Dashboard>, pairs: Vec<(String, String)>) -> Result<pullgate_analytics::Report, Response> {
    let q = api_query(&pairs).map_err(|e| text(StatusCode::BAD_REQUEST, format!("{e}\n")))?;
    with_store(d, move |s| s.report(&q)).await
}

async fn report_json(State(d): State<Arc<Dashboard>>, UrlQuery(pairs): Pairs) -> Response {
    match report(d, pairs).await {
        Ok(r) => ([(header::CONTENT_TYPE, "application/json")], serde_json::to_string(&r).expect("serialises")).into_response(),
        Err(r) => r,
    }
}

async fn report_csv(State(d): State<Arc<Dashboard>>, UrlQuery(pairs): Pairs) -> Response {
    match report(d, pairs).await {
        Ok(r) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"pullgate.csv\"")],
            r.to_csv(),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document().to_string()).into_response()
}

/// `/badge/acme/app/pulls.svg?period=30d`.
async fn badge_svg(State(d): State<Arc<Dashboard>>, Path(path): Path<String>, UrlQuery(pairs): Pairs) -> Response {
    let not_found = || {
        text(StatusCode::NOT_FOUND, "no such badge: a repository routes.yaml serves, then pulls.svg, downloads.svg or unique.svg\n".into())
    };
    let Some((repository, file)) = path.rsplit_once('/') else { return not_found() };
    let Some(metric) = Metric::parse(file) else { return not_found() };
    if !(d.served)(repository) {
        return not_found();
    }
    let period = pairs.iter().find(|(k, _)| k == "period").map(|(_, v)| v.as_str()).unwrap_or("30d");
    let view = match View::parse(&[("range".into(), period.into()), ("repository".into(), repository.into())], now_ms()) {
        Ok(v) => v,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("period: {e}\n")),
    };
    let q = view.query(Granularity::Total, vec![], None);
    let r = match with_store(d, move |s| s.report(&q)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let n = match metric {
        Metric::Pulls => r.totals.pulls,
        Metric::Downloads => r.totals.downloads,
        Metric::Unique => r.totals.unique_origins,
    };
    let value = format!("{}/{}", crate::chart::short(n), period);
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
        ],
        badge::svg(metric.label(), &value),
    )
        .into_response()
}

/// 200 while the store answers a query, else 503.
async fn healthz(State(d): State<Arc<Dashboard>>) -> Response {
    match with_store(d, |s| s.cursor("healthz")).await {
        Ok(_) => text(StatusCode::OK, "ok\n".into()),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "the analytics store does not answer\n".into()),
    }
}

/// Pulls, version checks and downloads by repository since the store began.
async fn metrics(State(d): State<Arc<Dashboard>>) -> Response {
    let q = pullgate_analytics::Query::all(0, now_ms() + 3_600_000, Granularity::Total, vec![Dim::Repository]);
    let r = match with_store(d, move |s| s.report(&q)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    use pullgate_base::metrics::{Kind, Metrics};
    let mut m = Metrics::new();
    type Pick = fn(&pullgate_analytics::Counters) -> u64;
    let families: [(&str, &str, Pick); 3] = [
        ("pullgate_pulls_total", "Pulls by repository (docs/analytics.md).", |c| c.pulls),
        ("pullgate_version_checks_total", "Version checks by repository.", |c| c.version_checks),
        ("pullgate_downloads_total", "Downloads by repository.", |c| c.downloads),
    ];
    for (name, help, pick) in families {
        let mut f = m.family(name, Kind::Counter, help);
        for row in &r.rows {
            let repository = row.dims.0.first().map(|(_, v)| v.as_str()).unwrap_or("");
            f.sample(&[("repository", repository)], pick(&row.counters));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.into_text()).into_response()
}
