//! The delivery state of one output: the ids of the alerts it has
//! acknowledged, in `LAKE/_outputs/NAME/delivered.ids`.
//!
//! Alerts themselves are durable in the lake's `alerts` table; what an output
//! still owes is "stored alerts it admits, minus this ledger". A batch's ids
//! are appended and synced to disk only after the output acknowledged the
//! batch, so a crash re-sends at most the batch in flight (at-least-once), and
//! receivers can drop the repeat by the alert `id`. A lock file keeps two
//! `fnwatch` processes from delivering to the same output at once.

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
        Ok(Ledger {
            path,
            file,
            ids,
            _lock: lock,
        })
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
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _l = Ledger::open(dir.path()).unwrap();
        let second = Ledger::open(dir.path());
        let msg = second.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("another fnwatch process"), "{msg}");
    }
}
