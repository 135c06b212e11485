//! File output: one rendered alert per line, appended and synced per batch,
//! rotated by size (`path` → `path.1` → … → `path.<keep>`).

mod config;

pub use config::FileConfig;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::SendError;
use super::alert::AlertRecord;
use super::deliver::failure;
use super::render::{Format, Origin, render};

/// A file output ready to write.
pub struct FileSink {
    path: PathBuf,
    format: Format,
    max_bytes: u64,
    keep: u32,
    origin: Origin,
    file: Option<(File, u64)>,
}

impl FileSink {
    pub fn build(c: &FileConfig, origin: Origin) -> FileSink {
        FileSink {
            path: c.path.clone(),
            format: c.format,
            max_bytes: c.max_bytes,
            keep: c.keep,
            origin,
            file: None,
        }
    }

    pub fn target(&self) -> String {
        format!("file {}", self.path.display())
    }

    pub async fn send(&mut self, batch: &[&AlertRecord]) -> std::result::Result<(), SendError> {
        let mut text = String::new();
        for a in batch {
            render(self.format, a, &self.origin, &mut text);
            text.push('\n');
        }
        let r = self.write(text.as_bytes());
        if r.is_err() {
            self.file = None;
        }
        r.map_err(|e| failure(true, format!("cannot write {}: {e}", self.path.display())))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some((_, size)) = &self.file
            && *size > 0
            && *size + bytes.len() as u64 > self.max_bytes
        {
            self.file = None;
            rotate(&self.path, self.keep)?;
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let size = f.metadata()?.len();
            self.file = Some((f, size));
            if size > 0 && size + bytes.len() as u64 > self.max_bytes {
                self.file = None;
                rotate(&self.path, self.keep)?;
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.file = Some((f, 0));
            }
        }
        if let Some((f, size)) = self.file.as_mut() {
            f.write_all(bytes)?;
            f.sync_data()?;
            *size += bytes.len() as u64;
        }
        Ok(())
    }
}

/// `path.(keep-1)` → `path.keep`, …, `path` → `path.1` (the oldest dropped).
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |i: u32| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{i}"));
        PathBuf::from(p)
    };
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for i in (1..keep).rev() {
        let from = numbered(i);
        if from.exists() {
            std::fs::rename(&from, numbered(i + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/alerts.jsonl");
        let cfg = FileConfig {
            path: path.clone(),
            format: Format::Json,
            max_bytes: 1000,
            keep: 2,
        };
        let mut sink = FileSink::build(&cfg, Origin::local());
        let a = crate::sinks::alert::sample();
        for _ in 0..10 {
            sink.send(&[&a, &a]).await.unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.len() <= 1000, "{}", current.len());
        for line in current.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["id"], a.id.as_str());
        }
        assert!(dir.path().join("out/alerts.jsonl.1").exists());
        assert!(dir.path().join("out/alerts.jsonl.2").exists());
        assert!(!dir.path().join("out/alerts.jsonl.3").exists());
    }
}
