//! The delivery state of one output: the ids of the alerts it has
//! acknowledged, in `LAKE/_outputs/NAME/delivered.ids`.
//!
//! Alerts themselves are durable in the lake's `alerts` table; what an output
//! still owes is "stored alerts it admits, minus this ledger". A batch's ids
//! are appended and synced to disk only after the output acknowledged the
//! batch, so a crash re-sends at most the batch in flight (at-least-once), and
//! receivers can drop the repeat by the alert `id`. A lock file keeps two
//! `fnwatch` processes from delivering to the same output at once.
//!
//! Alerts the receiver refused one by one (HTTP 400/413/422 for a batch of
//! one) are *parked* in `parked.jsonl` (id, reason, time): not owed any more,
//! so one event the receiver cannot take does not block the output; remove
//! the file (or lines of it) to try them again.
//!
//! The ledger is compacted by [`Ledger::prune`]: ids of alerts no longer in
//! the lake are dropped by writing a new file next to it, syncing it and
//! renaming it over the old one, so a crash leaves either file whole.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{AnalyticsError, Result};

/// Where an output's state lives under a lake.
pub fn state_dir(lake_root: &Path, output: &str) -> PathBuf {
    lake_root.join("_outputs").join(output)
}

/// The acknowledged alert ids of one output.
pub struct Ledger {
    path: PathBuf,
    file: File,
    ids: HashSet<String>,
    parked_path: PathBuf,
    parked: HashSet<String>,
    _lock: File,
}

impl Ledger {
    /// Opens (creating) the ledger in `dir`, taking the output's lock.
    pub fn open(dir: &Path) -> Result<Ledger> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            AnalyticsError::Delivery(format!("{what} {}: {e}", p.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AnalyticsError::Delivery(format!(
                    "another fnwatch process is delivering to this output (lock {} is held); wait for it to finish",
                    lock_path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock_path, e)),
        }
        let path = dir.join("delivered.ids");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("cannot open", &path, e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| io("cannot read", &path, e))?;
        // A crash mid-append can leave a torn last line: drop it (its batch is
        // sent again, which at-least-once allows).
        if !text.is_empty() && !text.ends_with('\n') {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            file.set_len(keep as u64)
                .map_err(|e| io("cannot repair", &path, e))?;
            tracing::warn!(path = %path.display(), "dropped a torn last line of the delivery ledger");
            text.truncate(keep);
        }
        let ids = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let parked_path = dir.join("parked.jsonl");
        let parked = read_parked(&parked_path)?;
        Ok(Ledger {
            path,
            file,
            ids,
            parked_path,
            parked,
            _lock: lock,
        })
    }

    /// Whether the alert was parked (refused by the receiver on its own).
    pub fn is_parked(&self, id: &str) -> bool {
        self.parked.contains(id)
    }

    /// Parked alerts.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Where parked alerts are listed.
    pub fn parked_path(&self) -> &Path {
        &self.parked_path
    }

    /// Parks alerts the receiver refused, with why (written and synced).
    pub fn park<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
        reason: &str,
        at: &str,
    ) -> Result<()> {
        let mut buf = String::new();
        let mut new = Vec::new();
        for id in ids {
            if self.parked.contains(id) {
                continue;
            }
            let line = serde_json::json!({"id": id, "reason": reason, "parked_at": at});
            buf.push_str(&line.to_string());
            buf.push('\n');
            new.push(id.to_string());
        }
        if buf.is_empty() {
            return Ok(());
        }
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.parked_path)?;
            f.write_all(buf.as_bytes())?;
            f.sync_data()
        };
        write().map_err(|e| {
            AnalyticsError::Delivery(format!("cannot write {}: {e}", self.parked_path.display()))
        })?;
        self.parked.extend(new);
        Ok(())
    }

    /// Drops the ids `keep` says no (alerts no longer in the lake), by
    /// writing the kept ids to a new file, syncing it and renaming it over
    /// the ledger. Returns how many were dropped; does nothing when none are.
    pub fn prune(&mut self, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let stale = self.ids.iter().filter(|id| !keep(id)).count();
        if stale == 0 {
            return Ok(0);
        }
        let mut kept: Vec<&String> = self.ids.iter().filter(|id| keep(id)).collect();
        kept.sort();
        let mut text = String::with_capacity(kept.iter().map(|k| k.len() + 1).sum());
        for id in &kept {
            text.push_str(id);
            text.push('\n');
        }
        let tmp = self.path.with_extension("ids.tmp");
        let io = |what: &str, p: &Path, e: std::io::Error| {
            AnalyticsError::Delivery(format!("{what} {}: {e}", p.display()))
        };
        {
            let mut f = File::create(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
            f.write_all(text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| io("cannot write", &tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| io("cannot replace", &self.path, e))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            // The rename itself made durable (best effort where unsupported).
            let _ = d.sync_all();
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io("cannot open", &self.path, e))?;
        let kept: HashSet<String> = kept.into_iter().cloned().collect();
        self.ids = kept;
        tracing::info!(path = %self.path.display(), dropped = stale, kept = self.ids.len(), "delivery ledger compacted");
        Ok(stale)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Records acknowledged ids durably (written and synced before returning).
    pub fn record<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let mut buf = String::new();
        let mut new = Vec::new();
        for id in ids {
            if !self.ids.contains(id) {
                buf.push_str(id);
                buf.push('\n');
                new.push(id.to_string());
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(buf.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| {
                AnalyticsError::Delivery(format!("cannot write {}: {e}", self.path.display()))
            })?;
        self.ids.extend(new);
        Ok(())
    }
}

/// The ids of `parked.jsonl` (missing: none). A torn last line is skipped.
fn read_parked(path: &Path) -> Result<HashSet<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => {
            return Err(AnalyticsError::Delivery(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut ids = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
                    ids.insert(id.to_string());
                }
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                line = i + 1,
                error = %e,
                "skipping a line of the parked alerts that is not JSON"
            ),
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(dir.path()).unwrap();
            l.record(["a", "b"]).unwrap();
            l.record(["b", "c"]).unwrap();
            assert_eq!(l.len(), 3);
        }
        // A torn append: "d" without its newline.
        let p = dir.path().join("delivered.ids");
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"d").unwrap();
        drop(f);
        let mut l = Ledger::open(dir.path()).unwrap();
        assert!(l.contains("a") && l.contains("c"));
        assert!(!l.contains("d"), "a torn line is not an acknowledgement");
        l.record(["e"]).unwrap();
        drop(l);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "a\nb\nc\ne\n");
    }

    #[test]
    fn pruning_keeps_live_ids_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        l.record(["a", "b", "c", "d"]).unwrap();
        assert_eq!(l.prune(|id| id != "b" && id != "d").unwrap(), 2);
        assert_eq!(l.prune(|_| true).unwrap(), 0, "nothing stale: no rewrite");
        assert!(l.contains("a") && !l.contains("b"));
        // Appends after a prune land in the new file.
        l.record(["e"]).unwrap();
        drop(l);
        let text = std::fs::read_to_string(dir.path().join("delivered.ids")).unwrap();
        assert_eq!(text, "a\nc\ne\n");
        assert!(!dir.path().join("delivered.ids.tmp").exists());
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn parked_alerts_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut l = Ledger::open(dir.path()).unwrap();
            l.park(["x"], "answered 413", "2026-12-07T00:00:00Z")
                .unwrap();
            l.park(["x"], "again", "2026-12-07T00:00:01Z").unwrap();
            assert!(l.is_parked("x") && !l.contains("x"));
        }
        let p = dir.path().join("parked.jsonl");
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"id\": \"y\"").unwrap(); // torn
        drop(f);
        let l = Ledger::open(dir.path()).unwrap();
        assert!(l.is_parked("x") && !l.is_parked("y"));
        assert_eq!(l.parked(), 1);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("answered 413"), "{text}");
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _l = Ledger::open(dir.path()).unwrap();
        let second = Ledger::open(dir.path());
        let msg = second.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("another fnwatch process"), "{msg}");
    }
}
