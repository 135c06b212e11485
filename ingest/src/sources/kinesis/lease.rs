//! Shard leases, so several workers share one stream without overlap.
//!
//! Leases live in the lake's storage under `_kinesis/STREAM/`:
//!
//! - `leases/SHARD/GENERATION.json`: one file per lease generation, created
//!   only if absent (the object store's create-if-absent: a hard link of a
//!   fully written temporary file on a local or network file system,
//!   `If-None-Match: *` on S3), so a reader never sees half a lease. The highest generation is the lease:
//!   `{"owner": "worker-id"}`, or `""` when released. The owner renews by
//!   creating the next generation; another worker takes a lease over by
//!   creating the next generation once it has seen the same generation
//!   unchanged for the lease time-out, or at once when it was released. Two
//!   workers racing for a generation: exactly one file creation succeeds.
//! - `workers/WORKER.json`: each worker's heartbeat, rewritten every renewal;
//!   the live workers (heartbeat younger than the time-out) split the shards
//!   evenly, and a worker above its share releases the extra shards after a
//!   commit.
//!
//! Leases decide who *reads* a shard. Who may *commit* a shard is enforced by
//! the Delta log itself (see the worker's fence): a worker commits a shard's
//! records only if the shard's checkpoint is still the one it started from,
//! and Delta's conflict check rejects a concurrent commit of the same shard.
//! So a worker that stalls past its lease can never write a shard range twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::path::Path as ObjPath;
use deltalake::logstore::object_store::{
    Error as ObjectStoreError, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::{IngestError, Result};
use crate::lake::Lake;

#[derive(Debug, Serialize, Deserialize)]
struct LeaseFile {
    owner: String,
    #[serde(default)]
    at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct WorkerFile {
    worker: String,
    pid: u32,
    at_ms: i64,
}

#[derive(Debug, Clone)]
struct Seen {
    generation: u64,
    owner: String,
    since: Instant,
}

/// What a lease round changed.
#[derive(Debug, Default)]
pub struct LeaseChanges {
    pub acquired: Vec<String>,
    pub lost: Vec<String>,
}

/// This worker's view of the leases of one stream.
pub struct Leases {
    store: ObjectStoreRef,
    /// `_kinesis/STREAM` inside the lake.
    dir: String,
    /// How the lake is shown in messages.
    display: String,
    worker: String,
    timeout: Duration,
    seen: HashMap<String, Seen>,
    /// Shards this worker holds, with when it last renewed them.
    owned: HashMap<String, Instant>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A file name safe for a stream or shard id.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Leases {
    pub fn new(lake: &Lake, stream: &str, worker: &str, timeout: Duration) -> Leases {
        Leases::with_store(lake.store(), lake.display(), stream, worker, timeout)
    }

    fn with_store(
        store: ObjectStoreRef,
        display: &str,
        stream: &str,
        worker: &str,
        timeout: Duration,
    ) -> Leases {
        Leases {
            store,
            dir: format!("_kinesis/{}", safe(stream)),
            display: display.trim_end_matches('/').to_string(),
            worker: worker.to_string(),
            timeout,
            seen: HashMap::new(),
            owned: HashMap::new(),
        }
    }

    fn err(&self, key: &str) -> impl FnOnce(ObjectStoreError) -> IngestError + use<> {
        let path = format!("{}/{key}", self.display);
        move |source| IngestError::ObjectStore {
            path,
            source: Box::new(source),
        }
    }

    /// The shards this worker holds.
    pub fn owned(&self) -> HashSet<String> {
        self.owned.keys().cloned().collect()
    }

    pub fn owns(&self, shard: &str) -> bool {
        self.owned.contains_key(shard)
    }

    fn heartbeat_key(&self) -> String {
        format!("{}/workers/{}.json", self.dir, safe(&self.worker))
    }

    /// Rewrites this worker's heartbeat.
    pub async fn heartbeat(&self) -> Result<()> {
        let key = self.heartbeat_key();
        let body = serde_json::to_vec(&WorkerFile {
            worker: self.worker.clone(),
            pid: std::process::id(),
            at_ms: now_ms(),
        })
        .map_err(|e| IngestError::Internal(format!("worker heartbeat: {e}")))?;
        self.store
            .put(&ObjPath::from(key.as_str()), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(self.err(&key))
    }

    /// Removes this worker's heartbeat (a clean stop).
    pub async fn retire(&self) {
        let key = self.heartbeat_key();
        let _ = self.store.delete(&ObjPath::from(key.as_str())).await;
    }

    /// Workers whose heartbeat is younger than the time-out (this one included).
    pub async fn live_workers(&self) -> Result<usize> {
        let key = format!("{}/workers", self.dir);
        let listed = self
            .store
            .list_with_delimiter(Some(&ObjPath::from(key.as_str())))
            .await
            .map_err(self.err(&key))?;
        let now = chrono::Utc::now();
        let mut live = HashSet::new();
        live.insert(safe(&self.worker));
        for o in listed.objects {
            let Some(stem) = o.location.filename().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let fresh = (now - o.last_modified)
                .to_std()
                .is_ok_and(|age| age < self.timeout)
                || o.last_modified > now;
            if fresh {
                live.insert(stem.to_string());
            }
        }
        Ok(live.len())
    }

    fn shard_dir(&self, shard: &str) -> String {
        format!("{}/leases/{}", self.dir, safe(shard))
    }

    /// The highest generation of a shard's lease and its owner.
    async fn latest(&self, shard: &str) -> Result<Option<(u64, String)>> {
        let dir = self.shard_dir(shard);
        let listed: Vec<_> = self
            .store
            .list(Some(&ObjPath::from(dir.as_str())))
            .try_collect()
            .await
            .map_err(self.err(&dir))?;
        let best = listed
            .iter()
            .filter_map(|o| {
                o.location
                    .filename()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .max();
        let Some(g) = best else { return Ok(None) };
        let key = format!("{dir}/{g:012}.json");
        let got = self
            .store
            .get(&ObjPath::from(key.as_str()))
            .await
            .map_err(self.err(&key))?;
        let text = got.bytes().await.map_err(self.err(&key))?;
        let lease: LeaseFile = serde_json::from_slice(&text).map_err(|e| {
            IngestError::Internal(format!("lease file {}/{key} is damaged: {e}", self.display))
        })?;
        Ok(Some((g, lease.owner)))
    }

    /// Creates generation `g` of a shard's lease for `owner`; false if it
    /// exists. The store's create-if-absent (a hard link on a local or
    /// network file system, `If-None-Match: *` on S3) decides races.
    async fn create(&self, shard: &str, g: u64, owner: &str) -> Result<bool> {
        let dir = self.shard_dir(shard);
        let key = format!("{dir}/{g:012}.json");
        let body = serde_json::to_vec(&LeaseFile {
            owner: owner.to_string(),
            at_ms: now_ms(),
        })
        .map_err(|e| IngestError::Internal(format!("lease: {e}")))?;
        let path = ObjPath::from(key.as_str());
        let put = self
            .store
            .put_opts(
                &path,
                PutPayload::from(body.clone()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        let created = match put {
            Ok(_) => true,
            Err(ObjectStoreError::AlreadyExists { .. }) => {
                // A store that retried the create after a lost reply reports
                // "exists" for an object this very call made: the content says.
                match self.store.get(&path).await {
                    Ok(r) => r.bytes().await.is_ok_and(|b| b.as_ref() == body.as_slice()),
                    Err(_) => false,
                }
            }
            Err(e) => return Err(self.err(&key)(e)),
        };
        if created && g > 4 {
            // Old generations are history; keep the last few for debugging.
            let old = format!("{dir}/{:012}.json", g - 4);
            let _ = self.store.delete(&ObjPath::from(old.as_str())).await;
        }
        Ok(created)
    }

    /// One lease round over the shards that may be read now: renews this
    /// worker's leases, notices lost ones, and takes free or expired shards
    /// while this worker holds fewer than its share.
    pub async fn round(&mut self, eligible: &[String]) -> Result<LeaseChanges> {
        let mut changes = LeaseChanges::default();
        self.heartbeat().await?;
        let workers = self.live_workers().await?.max(1);
        let share = eligible.len().div_ceil(workers);
        let now = Instant::now();
        let eligible_set: HashSet<&str> = eligible.iter().map(String::as_str).collect();
        // Shards no longer eligible (finished) are dropped from the books.
        self.owned.retain(|s, _| eligible_set.contains(s.as_str()));
        for shard in eligible {
            let latest = self.latest(shard).await?;
            let (g, owner) = latest.clone().unwrap_or((0, String::new()));
            if let Some(&renewed) = self.owned.get(shard) {
                if owner != self.worker {
                    warn!(shard = %shard, new_owner = %owner, "lease lost to another worker");
                    self.owned.remove(shard);
                    changes.lost.push(shard.clone());
                    continue;
                }
                if now.duration_since(renewed) >= self.timeout / 3 {
                    let started = Instant::now();
                    if self.create(shard, g + 1, &self.worker).await? {
                        self.owned.insert(shard.clone(), started);
                        debug!(shard = %shard, generation = g + 1, "lease renewed");
                    } else {
                        warn!(shard = %shard, "lease renewal lost a race; giving the shard up");
                        self.owned.remove(shard);
                        changes.lost.push(shard.clone());
                    }
                }
                continue;
            }
            // Not ours: track how long this generation has stood still.
            let seen = self.seen.entry(shard.clone()).or_insert(Seen {
                generation: g,
                owner: owner.clone(),
                since: now,
            });
            if seen.generation != g || seen.owner != owner {
                *seen = Seen {
                    generation: g,
                    owner: owner.clone(),
                    since: now,
                };
            }
            if self.owned.len() >= share {
                continue;
            }
            let free = latest.is_none() || owner.is_empty();
            let expired = now.duration_since(seen.since) >= self.timeout;
            if free || expired {
                let started = Instant::now();
                if self.create(shard, g + 1, &self.worker).await? {
                    if !free {
                        info!(shard = %shard, previous_owner = %owner, "took over an expired lease");
                    }
                    self.owned.insert(shard.clone(), started);
                    changes.acquired.push(shard.clone());
                }
            }
        }
        Ok(changes)
    }

    /// Shards this worker holds above its share of `eligible` (to release
    /// after its next commit).
    pub async fn surplus(&self, eligible: usize) -> Result<Vec<String>> {
        let workers = self.live_workers().await?.max(1);
        let share = eligible.div_ceil(workers);
        let mut owned: Vec<String> = self.owned.keys().cloned().collect();
        owned.sort();
        Ok(owned.into_iter().skip(share).collect())
    }

    /// Gives a shard up so another worker can take it at once.
    pub async fn release(&mut self, shard: &str) -> Result<()> {
        if self.owned.remove(shard).is_none() {
            return Ok(());
        }
        if let Some((g, owner)) = self.latest(shard).await?
            && owner == self.worker
        {
            self.create(shard, g + 1, "").await?;
            info!(shard = %shard, "lease released");
        }
        Ok(())
    }

    /// Gives every shard up (a clean stop).
    pub async fn release_all(&mut self) {
        let shards: Vec<String> = self.owned.keys().cloned().collect();
        for s in shards {
            if let Err(e) = self.release(&s).await {
                warn!(shard = %s, error = %e, "could not release the lease");
            }
        }
        self.retire().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> ObjectStoreRef {
        std::sync::Arc::new(
            deltalake::logstore::object_store::local::LocalFileSystem::new_with_prefix(dir)
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn two_workers_split_shards_and_take_over_a_dead_ones() {
        let dir = tempfile::tempdir().unwrap();
        let shards: Vec<String> = (0..4).map(|i| format!("shardId-00000000000{i}")).collect();
        let t = Duration::from_millis(300);
        let mut a = Leases::with_store(store(dir.path()), "lake", "s", "a", t);
        let mut b = Leases::with_store(store(dir.path()), "lake", "s", "b", t);
        // Both heartbeats exist before either takes shards: each takes two.
        a.heartbeat().await.unwrap();
        b.heartbeat().await.unwrap();
        let ca = a.round(&shards).await.unwrap();
        let cb = b.round(&shards).await.unwrap();
        assert_eq!(ca.acquired.len(), 2, "{ca:?}");
        assert_eq!(cb.acquired.len(), 2, "{cb:?}");
        assert!(a.owned().is_disjoint(&b.owned()));
        // b dies (no more rounds); after the time-out a takes everything.
        tokio::time::sleep(t + Duration::from_millis(50)).await;
        let ca = a.round(&shards).await.unwrap();
        assert!(
            ca.acquired.is_empty(),
            "b's leases are new to a: it waits a full time-out"
        );
        tokio::time::sleep(t + Duration::from_millis(50)).await;
        let ca = a.round(&shards).await.unwrap();
        assert_eq!(ca.acquired.len(), 2, "{ca:?}");
        assert_eq!(a.owned().len(), 4);
        // b comes back: it sees a's leases renewed and lost its own.
        let cb = b.round(&shards).await.unwrap();
        assert_eq!(cb.lost.len(), 2);
        assert!(b.owned().is_empty());
        // a releases its surplus; b picks it up at once.
        let extra = a.surplus(shards.len()).await.unwrap();
        assert_eq!(extra.len(), 2);
        for s in &extra {
            a.release(s).await.unwrap();
        }
        let cb = b.round(&shards).await.unwrap();
        assert_eq!(cb.acquired.len(), 2, "{cb:?}");
        assert!(a.owned().is_disjoint(&b.owned()));
    }

    #[tokio::test]
    async fn only_one_of_two_racing_creators_wins_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let a = Leases::with_store(store(dir.path()), "lake", "s", "a", Duration::from_secs(5));
        let b = Leases::with_store(store(dir.path()), "lake", "s", "b", Duration::from_secs(5));
        assert!(a.create("x", 1, "a").await.unwrap());
        assert!(!b.create("x", 1, "b").await.unwrap());
        assert_eq!(a.latest("x").await.unwrap(), Some((1, "a".to_string())));
    }
}
