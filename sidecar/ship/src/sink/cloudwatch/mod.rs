//! The CloudWatch Logs sink: PutLogEvents requests that keep every rule
//! (see [`rules`]), sent one at a time to a stream of this node's, retried
//! with backoff through throttling, 5xx, timeouts and outages; the log group
//! and stream are created when missing. An event CloudWatch refuses is
//! dead-lettered with the reason, never dropped without trace.

pub mod rules;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;

use super::retry::Retries;
use crate::batch::{DeadLetter, Prepared};
use crate::error::ShipError;
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub struct Settings {
    pub group: String,
    /// Default: this machine's host name.
    pub stream: Option<String>,
    /// Default: the standard chain (AWS_REGION, profile, instance metadata).
    pub region: Option<String>,
    /// Another endpoint than the region's (a test server, a VPC endpoint).
    pub endpoint: Option<String>,
    /// Set on the log group when pullgate creates it.
    pub retention_days: Option<i32>,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// One attempt fails after this long.
    pub timeout: Duration,
}

pub struct CloudWatch {
    client: Client,
    group: String,
    stream: String,
    retention_days: Option<i32>,
    retries: Retries,
    timeout: Duration,
}

/// What a failed call calls for.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The group or the stream does not exist.
    #[error("the log group or stream does not exist")]
    Missing,
    /// Throttled, 5xx, timed out, unreachable, no credentials yet: try again later.
    #[error("{0}")]
    Retry(String),
    /// CloudWatch will never take this request.
    #[error("refused: {0}")]
    Refused(String),
}

/// A CloudWatch Logs client: credentials from the standard chain, `region`
/// and `endpoint` where given, no SDK retries (callers retry, counted), one
/// attempt at most `timeout`. The shipper writes with it; analytics reads.
pub async fn client(region: Option<&str>, endpoint: Option<&str>, timeout: Duration) -> Result<Client, ShipError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).operation_attempt_timeout(timeout).build());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ShipError::CloudWatch("CloudWatch Logs needs a region: --aws-region, AWS_REGION, or a profile that sets one".into()));
    }
    Ok(Client::new(&config))
}

impl CloudWatch {
    pub async fn connect(s: Settings) -> Result<CloudWatch, ShipError> {
        let client = client(s.region.as_deref(), s.endpoint.as_deref(), s.timeout).await?;
        let stream = s.stream.clone().unwrap_or_else(host_name);
        tracing::info!(group = %s.group, %stream, region = ?client.config().region(), endpoint = ?s.endpoint, "shipping to CloudWatch Logs");
        Ok(CloudWatch {
            client,
            group: s.group,
            stream,
            retention_days: s.retention_days,
            retries: Retries::new("cloudwatch", s.retry_max),
            timeout: s.timeout,
        })
    }

    /// Ship `events` (in any order); return once CloudWatch has taken all
    /// of them, with the ones it can never take as dead letters.
    pub async fn deliver(&mut self, events: &[Prepared], stats: &Stats) -> Vec<DeadLetter> {
        let mut rest: Vec<&Prepared> = events.iter().collect();
        rest.sort_by_key(|e| e.ts_ms);
        let mut dead = Vec::new();
        while !rest.is_empty() {
            // Checked before every attempt: an outage can age events out.
            let now = pullgate_base::clock::now_ms() as i64;
            rest.retain(|e| match rules::check(e, now) {
                Ok(()) => true,
                Err(why) => {
                    dead.push(DeadLetter::event(why.reason(), e));
                    false
                }
            });
            let n = rules::next_request(&rest);
            if n == 0 {
                break;
            }
            match self.put(&rest[..n]).await {
                Ok(refused) => {
                    dead.extend(refused);
                    rest.drain(..n);
                    stats.batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.retries.succeeded();
                }
                Err(CallError::Missing) => {
                    if let Err(e) = self.create().await {
                        self.retries.wait(stats, &e.to_string()).await;
                    }
                }
                Err(CallError::Retry(e)) => self.retries.wait(stats, &e).await,
                Err(CallError::Refused(e)) => {
                    tracing::error!(error = %e, events = n, "CloudWatch Logs refused a request; its events are dead-lettered");
                    dead.extend(rest.drain(..n).map(|ev| DeadLetter::event(format!("refused by CloudWatch Logs: {e}"), ev)));
                }
            }
        }
        dead
    }

    /// One PutLogEvents call; the events CloudWatch rejected in its answer.
    async fn put(&self, events: &[&Prepared]) -> Result<Vec<DeadLetter>, CallError> {
        let input: Vec<InputLogEvent> = events
            .iter()
            .map(|e| InputLogEvent::builder().timestamp(e.ts_ms).message(e.json.clone()).build().expect("timestamp and message are set"))
            .collect();
        let call =
            self.client.put_log_events().log_group_name(&self.group).log_stream_name(&self.stream).set_log_events(Some(input)).send();
        // The SDK's attempt timeout covers the call; this bounds a hang anywhere else.
        let out = match tokio::time::timeout(self.timeout + Duration::from_secs(5), call).await {
            Ok(r) => r.map_err(classify)?,
            Err(_) => return Err(CallError::Retry("timed out".into())),
        };
        let Some(info) = out.rejected_log_events_info() else { return Ok(Vec::new()) };
        let index = |i: Option<i32>| i.map(|i| (i.max(0) as usize).min(events.len()));
        let old_end = index(info.too_old_log_event_end_index()).unwrap_or(0).max(index(info.expired_log_event_end_index()).unwrap_or(0));
        let new_start = index(info.too_new_log_event_start_index()).unwrap_or(events.len()).max(old_end);
        let letter = |e: &&Prepared, why: &str| DeadLetter::event(format!("rejected by CloudWatch Logs: {why}"), e);
        let mut dead: Vec<DeadLetter> = events[..old_end].iter().map(|e| letter(e, "too old or past the group's retention")).collect();
        dead.extend(events[new_start..].iter().map(|e| letter(e, "too far in the future")));
        if !dead.is_empty() {
            tracing::warn!(events = dead.len(), "CloudWatch Logs rejected events; they are dead-lettered");
        }
        Ok(dead)
    }

    /// Create the group (with its retention) and the stream; either may exist.
    async fn create(&self) -> Result<(), CallError> {
        let exists = |code: Option<&str>| code == Some("ResourceAlreadyExistsException");
        match self.client.create_log_group().log_group_name(&self.group).send().await {
            Ok(_) => {
                tracing::info!(group = %self.group, "created the log group");
                if let Some(days) = self.retention_days {
                    self.client
                        .put_retention_policy()
                        .log_group_name(&self.group)
                        .retention_in_days(days)
                        .send()
                        .await
                        .map_err(|e| CallError::Retry(describe(&e)))?;
                }
            }
            Err(e) if exists(e.code()) => {}
            Err(e) => return Err(CallError::Retry(describe(&e))),
        }
        match self.client.create_log_stream().log_group_name(&self.group).log_stream_name(&self.stream).send().await {
            Ok(_) => tracing::info!(stream = %self.stream, "created the log stream"),
            Err(e) if exists(e.code()) => {}
            Err(e) => return Err(CallError::Retry(describe(&e))),
        }
        Ok(())
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(e: SdkError<E>) -> CallError {
    if let SdkError::ServiceError(service) = &e {
        let status = service.raw().status().as_u16();
        match service.err().code() {
            Some("ResourceNotFoundException") => return CallError::Missing,
            Some("InvalidParameterException" | "SerializationException" | "DataAlreadyAcceptedException") => {
                return CallError::Refused(describe(&e));
            }
            _ if status == 413 => return CallError::Refused(describe(&e)),
            _ => {}
        }
    }
    // Throttling, 5xx, timeouts, no connection, credentials not there yet,
    // access denied until someone fixes a policy: the log keeps the events.
    CallError::Retry(describe(&e))
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E>) -> String {
    match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or("")),
        None => aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string(),
    }
}

/// This machine's name: the default stream, one per node.
pub fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // Stream names may not hold ':' or '*'.
    let name: String = name.trim().chars().filter(|c| !matches!(c, ':' | '*')).collect();
    if name.is_empty() {
        "pullgate".into()
    } else {
        name
    }
}
