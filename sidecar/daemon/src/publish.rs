//! Publishing the route table (Lua mode): to the file beside the include,
//! which this node's Lua hooks read, and to Redis, which every node's hooks
//! poll, with its delta from the table Redis held before. Redis is best
//! effort: a publish that cannot reach it is retried, and the file keeps
//! this node serving the table meanwhile.

use std::path::PathBuf;
use std::time::Duration;

use pullgate_config::Redis;
use pullgate_nginx::NginxError;
use pullgate_render::{RedisKeys, RouteTable, TABLE_FILE};
use redis::AsyncCommands;

const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the route table could not be published on this node.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("writing the route table: {0}")]
    File(#[from] NginxError),
}

/// Why one exchange with Redis failed (Redis is best effort: retried).
#[derive(Debug, thiserror::Error)]
enum RedisFailure {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RedisState {
    pub url: String,
    /// Whether the last exchange with Redis worked.
    pub ok: Option<bool>,
    pub last_error: Option<String>,
    /// The table version last written to Redis.
    pub published_version: Option<String>,
    pub publishes: u64,
    pub failures: u64,
}

pub struct Publisher {
    pub dir: PathBuf,
    redis: Option<(RedisKeys, Redis, redis::Client)>,
    /// A table Redis has not received yet, as text, and its stamp.
    pending: Option<(String, u64)>,
    current: Option<RouteTable>,
    /// The table Redis last took from this node: the next delta is from it.
    in_redis: Option<RouteTable>,
    pub state: RedisState,
}

impl Publisher {
    pub fn new(dir: PathBuf) -> Publisher {
        Publisher { dir, redis: None, pending: None, current: None, in_redis: None, state: RedisState::default() }
    }

    /// Use this Redis from now on (None: Lua mode is off).
    pub fn set_redis(&mut self, redis: Option<&Redis>) {
        let same = matches!((&self.redis, redis), (Some((_, a, _)), Some(b)) if a == b);
        if same {
            return;
        }
        self.redis = redis.and_then(|r| match redis::Client::open(r.url()) {
            Ok(c) => Some((RedisKeys::new(&r.key), r.clone(), c)),
            Err(e) => {
                tracing::error!(error = %e, "redis client");
                None
            }
        });
        self.state = RedisState { url: redis.map(Redis::url).unwrap_or_default(), ..RedisState::default() };
        self.in_redis = None;
    }

    /// Write the table to the local file, then to Redis.
    pub async fn publish(&mut self, table: &RouteTable) -> Result<(), PublishError> {
        let stamp = pullgate_base::clock::now_ms();
        let text = table.text(stamp);
        pullgate_nginx::write_file(&self.dir.join(TABLE_FILE), &text)?;
        self.current = Some(table.clone());
        self.pending = Some((text, stamp));
        self.flush().await;
        Ok(())
    }

    /// Send a pending table; and if Redis lost ours (a restart without
    /// persistence), send it again. A newer table from another node is left alone.
    pub async fn resync(&mut self) {
        if self.pending.is_none() {
            let Some((keys, _, client)) = &self.redis else { return };
            let key = keys.version.clone();
            let have: Result<Option<String>, RedisFailure> = exchange(client, |mut c| async move { c.get(key).await }).await;
            match have {
                Ok(Some(_)) => {
                    self.state.ok = Some(true);
                    return;
                }
                Ok(None) => {
                    tracing::warn!("redis has no route table; publishing ours again");
                    self.in_redis = None;
                }
                Err(e) => {
                    self.note_failure(e);
                    return;
                }
            }
            let Some(table) = &self.current else { return };
            let stamp = pullgate_base::clock::now_ms();
            self.pending = Some((table.text(stamp), stamp));
        }
        self.flush().await;
    }

    async fn flush(&mut self) {
        let (Some((keys, _, client)), Some((text, stamp)), Some(table)) = (&self.redis, &self.pending, &self.current) else { return };
        let version = table.version.clone();
        // Nodes that hold the table Redis had apply this delta, not the whole table.
        let delta = self.in_redis.as_ref().map(|old| table.delta_from(old, *stamp));
        let (keys, text2, v2) = (keys.clone(), text.clone(), version.clone());
        let result: Result<(), RedisFailure> = exchange(client, |mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic().set(&keys.table, text2);
            match delta {
                Some(d) => pipe.set(&keys.delta, d),
                None => pipe.del(&keys.delta),
            };
            pipe.set(&keys.version, &v2).publish(&keys.events, &v2).query_async::<()>(&mut c).await
        })
        .await;
        match result {
            Ok(()) => {
                self.pending = None;
                self.in_redis = self.current.clone();
                self.state.ok = Some(true);
                self.state.last_error = None;
                self.state.published_version = Some(version);
                self.state.publishes += 1;
            }
            Err(e) => self.note_failure(e),
        }
    }

    fn note_failure(&mut self, e: RedisFailure) {
        if self.state.ok != Some(false) {
            tracing::warn!(error = %e, url = %self.state.url, "redis unreachable; nodes follow once it is back");
        }
        self.state.ok = Some(false);
        self.state.last_error = Some(e.to_string());
        self.state.failures += 1;
    }
}

/// One exchange with Redis on a fresh connection, bounded in time.
async fn exchange<T, F, Fut>(client: &redis::Client, f: F) -> Result<T, RedisFailure>
where
    F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let work = async {
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(f(conn).await?)
    };
    tokio::time::timeout(REDIS_TIMEOUT, work).await.unwrap_or(Err(RedisFailure::Timeout))
}
