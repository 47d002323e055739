//! Ingest from CloudWatch Logs: every stream of a log group (one per gateway
//! node), read with FilterLogEvents over time windows. The cursor is a
//! time: the end of the last window read to its last page. Each run starts
//! `overlap` before it, so events CloudWatch took in late are read too; the
//! request ids make the re-read count nothing twice. Next-tokens are used
//! within a window only, never kept (they expire). Throttling, 5xx and
//! timeouts are retried with backoff.

use std::time::Duration;

use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::Client;

use crate::error::AnalyticsError;
use crate::event::Shipped;
use crate::ingest::{Progress, BATCH};
use crate::store::Store;

/// What to read; the client (region, endpoint, credentials) comes from the
/// caller (`pullgate_ship::sink::cloudwatch::client`, the one the shipper uses).
#[derive(Debug, Clone)]
pub struct CloudWatchSettings {
    pub group: String,
    /// Only the streams whose names begin so: one ingester of a pool that
    /// splits the group by stream (each prefix its own cursor).
    pub stream_prefix: Option<String>,
    /// Where to start when the group was never read (ms since the epoch).
    pub start_ms: i64,
    /// How far before the cursor each run starts again.
    pub overlap_ms: i64,
    /// How much time one window covers.
    pub window_ms: i64,
}

/// Retries of one call before the run gives up (the next run starts over from the cursor).
const ATTEMPTS: u32 = 8;

/// Read the group from its cursor (less the overlap) up to `now_ms` into `store`.
pub async fn ingest(client: &Client, store: &mut dyn Store, s: &CloudWatchSettings, now_ms: i64) -> Result<Progress, AnalyticsError> {
    let source = match &s.stream_prefix {
        Some(p) => format!("cloudwatch:{}:{p}", s.group),
        None => format!("cloudwatch:{}", s.group),
    };
    let mut from = match store.cursor(&source)? {
        Some(c) => {
            c.parse::<i64>().map_err(|_| AnalyticsError::Query(format!("the cursor of {source} is not a time: {c}")))? - s.overlap_ms
        }
        None => s.start_ms,
    };
    let mut progress = Progress::default();
    let mut settler = crate::ingest::Settler::new();
    while from < now_ms {
        let to = (from + s.window_ms).min(now_ms);
        // Batches within a window keep the cursor where it was; the last one moves it to the window's end.
        let before = store.cursor(&source)?.unwrap_or_else(|| s.start_ms.to_string());
        let mut batch = Vec::with_capacity(BATCH);
        let mut token: Option<String> = None;
        loop {
            let out = with_retries(|| {
                client
                    .filter_log_events()
                    .log_group_name(&s.group)
                    .set_log_stream_name_prefix(s.stream_prefix.clone())
                    .start_time(from)
                    .end_time(to)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
            for e in out.events() {
                match Shipped::parse(e.message().unwrap_or("")) {
                    Ok(ev) => batch.push(ev),
                    Err(why) => {
                        progress.bad_lines += 1;
                        tracing::warn!(group = %s.group, stream = e.log_stream_name().unwrap_or(""), %why, "skipping an event");
                    }
                }
            }
            if batch.len() >= BATCH {
                let done = store.ingest(&batch, &source, &before)?;
                (progress.events, progress.new) = (progress.events + done.events, progress.new + done.new);
                batch.clear();
                settler.maybe(store)?;
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let done = store.ingest(&batch, &source, &to.to_string())?;
        (progress.events, progress.new) = (progress.events + done.events, progress.new + done.new);
        from = to;
    }
    // Also when nothing came: what an earlier run left pending. A caller
    // that stops after this run settles the store.
    store.tidy()?;
    Ok(progress)
}

async fn with_retries<T, E, F, Fut>(mut call: F) -> Result<T, AnalyticsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E>>>,
{
    let mut delay = Duration::from_millis(200);
    for attempt in 1.. {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let code = e.code().unwrap_or("").to_string();
                let server = matches!(&e, SdkError::ServiceError(s) if s.raw().status().as_u16() >= 500);
                let transient = code.contains("Throttl") || server || matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_));
                let what = match e.code() {
                    Some(c) => format!("{c}: {}", e.message().unwrap_or("")),
                    None => aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e).to_string(),
                };
                if !transient || attempt >= ATTEMPTS {
                    return Err(AnalyticsError::Query(format!("CloudWatch Logs: {what}")));
                }
                tracing::warn!(attempt, error = %what, retry_in = ?delay, "CloudWatch Logs did not answer; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    unreachable!("the loop returns")
}
