//! Shard leases, so several workers share one stream without overlap.
//!
//! Leases live in the lake's storage under `_kinesis/STREAM/`:
//!
//! - `leases/SHARD/GENERATION.json`: one file per lease generation, created
//!   only if absent (a hard link of a fully written temporary file, so a
//!   reader never sees half a lease). The highest generation is the lease:
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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::{IngestError, Result};

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
    dir: PathBuf,
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Storage {
        path: path.display().to_string(),
        source,
    }
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
    pub fn new(lake_root: &Path, stream: &str, worker: &str, timeout: Duration) -> Result<Leases> {
        let dir = lake_root.join("_kinesis").join(safe(stream));
        for sub in ["leases", "workers"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(Leases {
            dir,
            worker: worker.to_string(),
            timeout,
            seen: HashMap::new(),
            owned: HashMap::new(),
        })
    }

    /// The shards this worker holds.
    pub fn owned(&self) -> HashSet<String> {
        self.owned.keys().cloned().collect()
    }

    pub fn owns(&self, shard: &str) -> bool {
        self.owned.contains_key(shard)
    }

    /// Rewrites this worker's heartbeat.
    pub fn heartbeat(&self) -> Result<()> {
        let path = self
            .dir
            .join("workers")
            .join(format!("{}.json", safe(&self.worker)));
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let body = serde_json::to_vec(&WorkerFile {
            worker: self.worker.clone(),
            pid: std::process::id(),
            at_ms: now_ms(),
        })
        .map_err(|e| IngestError::Internal(format!("worker heartbeat: {e}")))?;
        std::fs::write(&tmp, body).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Removes this worker's heartbeat (a clean stop).
    pub fn retire(&self) {
        let path = self
            .dir
            .join("workers")
            .join(format!("{}.json", safe(&self.worker)));
        let _ = std::fs::remove_file(path);
    }

    /// Workers whose heartbeat is younger than the time-out (this one included).
    pub fn live_workers(&self) -> Result<usize> {
        let dir = self.dir.join("workers");
        let mut live = HashSet::new();
        live.insert(self.worker.clone());
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let fresh = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < self.timeout);
            if fresh && let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                live.insert(stem.to_string());
            }
        }
        Ok(live.len())
    }

    fn shard_dir(&self, shard: &str) -> PathBuf {
        self.dir.join("leases").join(safe(shard))
    }

    /// The highest generation of a shard's lease and its owner.
    fn latest(&self, shard: &str) -> Result<Option<(u64, String)>> {
        let dir = self.shard_dir(shard);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut best: Option<u64> = None;
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let Some(g) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            best = Some(best.map_or(g, |b| b.max(g)));
        }
        let Some(g) = best else { return Ok(None) };
        let path = dir.join(format!("{g:012}.json"));
        let text = std::fs::read(&path).map_err(io_err(&path))?;
        let lease: LeaseFile = serde_json::from_slice(&text).map_err(|e| {
            IngestError::Internal(format!("lease file {} is damaged: {e}", path.display()))
        })?;
        Ok(Some((g, lease.owner)))
    }

    /// Creates generation `g` of a shard's lease for `owner`; false if it exists.
    fn create(&self, shard: &str, g: u64, owner: &str) -> Result<bool> {
        let dir = self.shard_dir(shard);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{g:012}.json"));
        let tmp = dir.join(format!(
            ".{g:012}.{}.{}.tmp",
            safe(&self.worker),
            std::process::id()
        ));
        let body = serde_json::to_vec(&LeaseFile {
            owner: owner.to_string(),
            at_ms: now_ms(),
        })
        .map_err(|e| IngestError::Internal(format!("lease: {e}")))?;
        std::fs::write(&tmp, &body).map_err(io_err(&tmp))?;
        let mut linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        // A network file system that retries the link after a lost reply
        // reports "exists" for a file this very call made: the content says.
        if matches!(&linked, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists)
            && std::fs::read(&path).is_ok_and(|b| b == body)
        {
            linked = Ok(());
        }
        match linked {
            Ok(()) => {
                // Old generations are history; keep the last few for debugging.
                if g > 4 {
                    let _ = std::fs::remove_file(dir.join(format!("{:012}.json", g - 4)));
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// One lease round over the shards that may be read now: renews this
    /// worker's leases, notices lost ones, and takes free or expired shards
    /// while this worker holds fewer than its share.
    pub fn round(&mut self, eligible: &[String]) -> Result<LeaseChanges> {
        let mut changes = LeaseChanges::default();
        self.heartbeat()?;
        let workers = self.live_workers()?.max(1);
        let share = eligible.len().div_ceil(workers);
        let now = Instant::now();
        let eligible_set: HashSet<&str> = eligible.iter().map(String::as_str).collect();
        // Shards no longer eligible (finished) are dropped from the books.
        self.owned.retain(|s, _| eligible_set.contains(s.as_str()));
        for shard in eligible {
            let latest = self.latest(shard)?;
            let (g, owner) = latest.clone().unwrap_or((0, String::new()));
            if self.owned.contains_key(shard) {
                if owner != self.worker {
                    warn!(shard = %shard, new_owner = %owner, "lease lost to another worker");
                    self.owned.remove(shard);
                    changes.lost.push(shard.clone());
                    continue;
                }
                let renewed = self.owned[shard];
                if now.duration_since(renewed) >= self.timeout / 3 {
                    let started = Instant::now();
                    if self.create(shard, g + 1, &self.worker)? {
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
                if self.create(shard, g + 1, &self.worker)? {
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
    pub fn surplus(&self, eligible: usize) -> Result<Vec<String>> {
        let workers = self.live_workers()?.max(1);
        let share = eligible.div_ceil(workers);
        let mut owned: Vec<String> = self.owned.keys().cloned().collect();
        owned.sort();
        Ok(owned.into_iter().skip(share).collect())
    }

    /// Gives a shard up so another worker can take it at once.
    pub fn release(&mut self, shard: &str) -> Result<()> {
        if self.owned.remove(shard).is_none() {
            return Ok(());
        }
        if let Some((g, owner)) = self.latest(shard)?
            && owner == self.worker
        {
            self.create(shard, g + 1, "")?;
            info!(shard = %shard, "lease released");
        }
        Ok(())
    }

    /// Gives every shard up (a clean stop).
    pub fn release_all(&mut self) {
        let shards: Vec<String> = self.owned.keys().cloned().collect();
        for s in shards {
            if let Err(e) = self.release(&s) {
                warn!(shard = %s, error = %e, "could not release the lease");
            }
        }
        self.retire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_workers_split_shards_and_take_over_a_dead_ones() {
        let dir = tempfile::tempdir().unwrap();
        let shards: Vec<String> = (0..4).map(|i| format!("shardId-00000000000{i}")).collect();
        let t = Duration::from_millis(300);
        let mut a = Leases::new(dir.path(), "s", "a", t).unwrap();
        let mut b = Leases::new(dir.path(), "s", "b", t).unwrap();
        // Both heartbeats exist before either takes shards: each takes two.
        a.heartbeat().unwrap();
        b.heartbeat().unwrap();
        let ca = a.round(&shards).unwrap();
        let cb = b.round(&shards).unwrap();
        assert_eq!(ca.acquired.len(), 2, "{ca:?}");
        assert_eq!(cb.acquired.len(), 2, "{cb:?}");
        assert!(a.owned().is_disjoint(&b.owned()));
        // b dies (no more rounds); after the time-out a takes everything.
        std::thread::sleep(t + Duration::from_millis(50));
        let ca = a.round(&shards).unwrap();
        assert!(
            ca.acquired.is_empty(),
            "b's leases are new to a: it waits a full time-out"
        );
        std::thread::sleep(t + Duration::from_millis(50));
        let ca = a.round(&shards).unwrap();
        assert_eq!(ca.acquired.len(), 2, "{ca:?}");
        assert_eq!(a.owned().len(), 4);
        // b comes back: it sees a's leases renewed and lost its own.
        let cb = b.round(&shards).unwrap();
        assert_eq!(cb.lost.len(), 2);
        assert!(b.owned().is_empty());
        // a releases its surplus; b picks it up at once.
        let extra = a.surplus(shards.len()).unwrap();
        assert_eq!(extra.len(), 2);
        for s in &extra {
            a.release(s).unwrap();
        }
        let cb = b.round(&shards).unwrap();
        assert_eq!(cb.acquired.len(), 2, "{cb:?}");
        assert!(a.owned().is_disjoint(&b.owned()));
    }

    #[test]
    fn only_one_of_two_racing_creators_wins_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let a = Leases::new(dir.path(), "s", "a", Duration::from_secs(5)).unwrap();
        let b = Leases::new(dir.path(), "s", "b", Duration::from_secs(5)).unwrap();
        assert!(a.create("x", 1, "a").unwrap());
        assert!(!b.create("x", 1, "b").unwrap());
        assert_eq!(a.latest("x").unwrap(), Some((1, "a".to_string())));
    }
}
