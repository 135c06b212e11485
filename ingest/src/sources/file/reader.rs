//! Finding input files, hashing them, and cutting them into chunks of lines.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::error::{IngestError, Result};

/// One input file to read.
#[derive(Debug, Clone)]
pub(crate) struct InputFile {
    /// As shown to the user (and stored in dead letters).
    pub display: Arc<str>,
    /// Where the bytes are (a spooled copy for stdin).
    pub path: PathBuf,
    pub size: u64,
}

const EXTENSIONS: [&str; 3] = ["jsonl", "ndjson", "json"];

fn has_input_extension(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    EXTENSIONS
        .iter()
        .any(|e| name.len() > e.len() + 1 && name.ends_with(&format!(".{e}")))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        // `_name` and `.name` are metadata by convention (labels, markers,
        // Delta logs, editors' files), not telemetry.
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('_') || n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if has_input_extension(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Expands the inputs: files as given, folders recursively (files with a
/// telemetry extension, in name order, leaving out names starting with `_` or `.`), `-` as standard input spooled to a
/// temporary file. Paths that cannot be read are returned as failures.
pub(crate) fn expand_inputs(
    inputs: &[PathBuf],
    spool_dir: &Path,
) -> (Vec<InputFile>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut stdin_read = false;
    for input in inputs {
        if input.as_os_str() == "-" {
            if std::mem::replace(&mut stdin_read, true) {
                failures.push((
                    "<stdin>".to_string(),
                    "`-` is given more than once; standard input is read once".into(),
                ));
                continue;
            }
            match spool_stdin(spool_dir) {
                Ok((path, size)) => files.push(InputFile {
                    display: Arc::from("<stdin>"),
                    path,
                    size,
                }),
                Err(e) => failures.push(("<stdin>".to_string(), e.to_string())),
            }
            continue;
        }
        let display = input.display().to_string();
        match std::fs::metadata(input) {
            Err(e) => failures.push((display, e.to_string())),
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                match walk(input, &mut found) {
                    Err(e) => failures.push((display, e.to_string())),
                    Ok(()) if found.is_empty() => failures.push((
                        display,
                        "folder holds no .jsonl, .ndjson or .json files (optionally .gz)".into(),
                    )),
                    Ok(()) => {
                        for p in found {
                            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                            files.push(InputFile {
                                display: Arc::from(p.display().to_string()),
                                path: p,
                                size,
                            });
                        }
                    }
                }
            }
            Ok(m) => files.push(InputFile {
                display: Arc::from(display),
                path: input.clone(),
                size: m.len(),
            }),
        }
    }
    (files, failures)
}

fn spool_stdin(dir: &Path) -> std::io::Result<(PathBuf, u64)> {
    let path = dir.join("stdin.jsonl");
    let mut out = File::create(&path)?;
    let size = std::io::copy(&mut std::io::stdin().lock(), &mut out)?;
    Ok((path, size))
}

/// BLAKE3 of a file's bytes, as hex: the file's identity in the lake.
///
/// Ingest cannot start reading before it knows the hash, so a second thread
/// reads the next block while the last one is hashed on every core (blake3's
/// own rayon support). The file is read, not memory-mapped: mapped pages count
/// in the process's resident memory, which would then grow with the input.
pub(crate) fn hash_file(path: &Path) -> Result<String> {
    let err = |source| IngestError::Input {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        let _ = empty_tx.send(Vec::with_capacity(HASH_BLOCK));
    }
    let mut h = blake3::Hasher::new();
    let read = std::thread::scope(|s| {
        s.spawn(move || {
            while let Ok(mut block) = empty_rx.recv() {
                // A full block (short only at the end), so each parallel
                // update gets a large input.
                block.clear();
                let n = match (&mut f).take(HASH_BLOCK as u64).read_to_end(&mut block) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                };
                if full_tx.send(Ok(block)).is_err() || n == 0 {
                    return;
                }
            }
        });
        // Both ends are owned here: whatever way this ends, the reader's
        // channels close and the scope's join cannot wait on a blocked send.
        let (full_rx, empty_tx) = (full_rx, empty_tx);
        while let Ok(block) = full_rx.recv() {
            let block = block?;
            if block.is_empty() {
                break;
            }
            h.update_rayon(&block);
            let _ = empty_tx.send(block);
        }
        Ok(())
    });
    read.map_err(err)?;
    Ok(h.finalize().to_hex().to_string())
}

/// Bytes read and hashed at a time by [`hash_file`].
pub(crate) const HASH_BLOCK: usize = 4 * 1024 * 1024;

/// Bytes of each end of a file that go into its probe.
const PROBE_BYTES: u64 = 64 * 1024;

/// A file's probe: BLAKE3 of its size and its first and last 64 KiB, as hex.
///
/// Files with the same bytes have the same probe, so a file whose probe the
/// lake has never recorded is not in the lake, and its full hash can be taken
/// while it is read instead of in a pass of its own before.
pub(crate) fn probe_file(path: &Path) -> Result<String> {
    use std::io::{Seek, SeekFrom};
    let err = |source| IngestError::Input {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let size = f.metadata().map_err(err)?.len();
    let mut head = Vec::with_capacity(PROBE_BYTES as usize);
    (&mut f)
        .take(PROBE_BYTES)
        .read_to_end(&mut head)
        .map_err(err)?;
    let mut tail = Vec::new();
    if size > PROBE_BYTES {
        f.seek(SeekFrom::Start(probe_tail_start(size)))
            .map_err(err)?;
        f.take(PROBE_BYTES).read_to_end(&mut tail).map_err(err)?;
    }
    Ok(probe_of(size, &head, &tail))
}

/// Where the probe's tail starts: the last 64 KiB, after the head.
fn probe_tail_start(size: u64) -> u64 {
    size.saturating_sub(PROBE_BYTES).max(PROBE_BYTES)
}

fn probe_of(size: u64, head: &[u8], tail: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"fnwatch-probe-1\0");
    h.update(&size.to_le_bytes());
    h.update(head);
    h.update(tail);
    h.finalize().to_hex().to_string()
}

/// The hash and probe of a file's bytes, taken as they stream past.
pub(crate) struct StreamIdentity {
    hasher: blake3::Hasher,
    size: u64,
    head: Vec<u8>,
    /// The last (up to) 64 KiB.
    tail: Vec<u8>,
}

/// What [`StreamIdentity`] found once the whole file went past.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    pub hash: String,
    pub probe: String,
}

impl StreamIdentity {
    fn new() -> Self {
        StreamIdentity {
            hasher: blake3::Hasher::new(),
            size: 0,
            head: Vec::with_capacity(PROBE_BYTES as usize),
            tail: Vec::with_capacity(2 * PROBE_BYTES as usize),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        let keep = PROBE_BYTES as usize;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        if self.head.len() < keep {
            let n = (keep - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
        }
        if bytes.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        } else {
            self.tail.extend_from_slice(bytes);
            if self.tail.len() > keep {
                self.tail.drain(..self.tail.len() - keep);
            }
        }
    }

    fn finish(self) -> Identity {
        let tail_len = if self.size > PROBE_BYTES {
            (self.size - probe_tail_start(self.size)) as usize
        } else {
            0
        };
        let tail = &self.tail[self.tail.len() - tail_len.min(self.tail.len())..];
        Identity {
            hash: self.hasher.finalize().to_hex().to_string(),
            probe: probe_of(self.size, &self.head, tail),
        }
    }
}

/// What the reader sends to the decoders, in order (`seq`).
#[derive(Debug)]
pub(crate) enum Work {
    /// Whole lines, each ending in `\n`; the first is line `first_line`.
    Lines {
        seq: u64,
        file: usize,
        first_line: u64,
        data: Vec<u8>,
        /// Dead letters of lines up to here are already in the lake.
        suppress_dead_through: u64,
    },
    /// A line longer than the record limit: only its first bytes were kept.
    Oversized {
        seq: u64,
        file: usize,
        line: u64,
        prefix: Vec<u8>,
        size: u64,
        suppress: bool,
    },
    /// The file ended (or could not be read further) after `lines` lines.
    FileEnd {
        seq: u64,
        file: usize,
        lines: u64,
        /// Hash and probe of the file's bytes, when the reader was asked to
        /// take them and read the file to its end.
        identity: Option<Identity>,
        /// False when the file could not even be opened (it went away
        /// after planning): nothing of it was read.
        opened: bool,
        error: Option<String>,
        /// The readable start of the line the error cut off.
        partial: Vec<u8>,
    },
}

/// Where to start reading one file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resume {
    /// Lines 1..=skip_through are in the lake (events and dead letters).
    pub skip_through: u64,
    /// Dead letters of lines up to here are in the lake.
    pub suppress_dead_through: u64,
}

const OVERSIZED_PREFIX: usize = 4096;

/// Reads one file and sends its chunks, in buffers taken from `spare` when
/// there are any; with `hash`, also takes the hash and probe of the bytes it
/// reads.
/// Returns false when the receivers hung up.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_file(
    file_idx: usize,
    input: &InputFile,
    resume: Resume,
    hash: bool,
    chunk_bytes: usize,
    max_line: usize,
    seq: &mut u64,
    bytes_read: &AtomicU64,
    tx: &Sender<Work>,
    spare: &Receiver<Vec<u8>>,
) -> bool {
    // A chunk buffer the decoders are done with, or a new one: buffers are
    // reused rather than fresh memory faulted in for every chunk.
    let buffer = || match spare.try_recv() {
        Ok(mut b) => {
            b.clear();
            b
        }
        Err(_) => Vec::with_capacity(chunk_bytes + 64 * 1024),
    };
    let mut next_seq = || {
        let s = *seq;
        *seq += 1;
        s
    };
    let f = match File::open(&input.path) {
        Ok(f) => f,
        Err(e) => {
            return tx
                .send(Work::FileEnd {
                    seq: next_seq(),
                    file: file_idx,
                    lines: 0,
                    identity: None,
                    opened: false,
                    error: Some(format!("cannot open: {e}")),
                    partial: Vec::new(),
                })
                .is_ok();
        }
    };
    let mut hasher = hash.then(StreamIdentity::new);
    let mut at_end = false;
    let counted = CountingReader {
        inner: f,
        count: bytes_read,
        hasher: hasher.as_mut(),
        at_end: &mut at_end,
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, counted);
    let gzip = {
        use std::io::BufRead;
        matches!(buffered.fill_buf(), Ok(b) if b.starts_with(&[0x1F, 0x8B]))
    };
    let mut reader: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };

    let mut block = vec![0u8; 1024 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut oversized: Option<(Vec<u8>, u64)> = None;
    let mut chunk: Vec<u8> = buffer();
    let mut chunk_first = 0u64;
    let mut line_no = 0u64;
    let mut error = None;

    macro_rules! send_chunk {
        () => {
            if !chunk.is_empty() {
                let data = std::mem::replace(&mut chunk, buffer());
                if tx
                    .send(Work::Lines {
                        seq: next_seq(),
                        file: file_idx,
                        first_line: chunk_first,
                        data,
                        suppress_dead_through: resume.suppress_dead_through,
                    })
                    .is_err()
                {
                    return false;
                }
            }
        };
    }
    // A complete line (without its newline) is `pending + piece`.
    macro_rules! complete_line {
        ($piece:expr) => {{
            let piece: &[u8] = $piece;
            line_no += 1;
            // A line over the limit keeps only its first bytes.
            let too_long = match oversized.take() {
                Some((prefix, size)) => Some((prefix, size + piece.len() as u64)),
                None if pending.len() + piece.len() > max_line => {
                    let size = (pending.len() + piece.len()) as u64;
                    let mut prefix = std::mem::take(&mut pending);
                    prefix.extend_from_slice(&piece[..piece.len().min(OVERSIZED_PREFIX)]);
                    prefix.truncate(OVERSIZED_PREFIX);
                    Some((prefix, size))
                }
                None => None,
            };
            if let Some((prefix, size)) = too_long {
                if line_no > resume.skip_through {
                    send_chunk!();
                    if tx
                        .send(Work::Oversized {
                            seq: next_seq(),
                            file: file_idx,
                            line: line_no,
                            prefix,
                            size,
                            suppress: line_no <= resume.suppress_dead_through,
                        })
                        .is_err()
                    {
                        return false;
                    }
                }
                pending.clear();
            } else if line_no > resume.skip_through {
                if chunk.is_empty() {
                    chunk_first = line_no;
                }
                chunk.extend_from_slice(&pending);
                chunk.extend_from_slice(piece);
                chunk.push(b'\n');
                pending.clear();
                if chunk.len() >= chunk_bytes {
                    send_chunk!();
                }
            } else {
                pending.clear();
            }
        }};
    }

    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error = Some(if gzip {
                    format!("gzip stream is corrupt or truncated ({e})")
                } else {
                    format!("read failed ({e})")
                });
                break;
            }
        };
        let mut data = &block[..n];
        while let Some(i) = memchr::memchr(b'\n', data) {
            let (piece, rest) = data.split_at(i);
            data = &rest[1..];
            complete_line!(piece);
        }
        if let Some((_, size)) = oversized.as_mut() {
            *size += data.len() as u64;
        } else {
            pending.extend_from_slice(data);
            if pending.len() > max_line {
                let size = pending.len() as u64;
                pending.truncate(OVERSIZED_PREFIX);
                oversized = Some((std::mem::take(&mut pending), size));
            }
        }
    }
    // The hash covers the whole file only when the file was read to its end
    // (a corrupt gzip stream stops reading before it).
    drop(reader);
    let identity = hasher
        .filter(|_| at_end && error.is_none())
        .map(StreamIdentity::finish);
    // A last line without a newline is a line; after a read error, what was
    // read of the broken line goes with the file's dead letter instead.
    let mut partial = Vec::new();
    if error.is_some() {
        partial = match oversized.take() {
            Some((prefix, _)) => prefix,
            None => std::mem::take(&mut pending),
        };
    } else if !pending.is_empty() || oversized.is_some() {
        complete_line!(&[]);
    }
    send_chunk!();
    tx.send(Work::FileEnd {
        seq: next_seq(),
        file: file_idx,
        lines: line_no,
        identity,
        opened: true,
        error,
        partial,
    })
    .is_ok()
}

/// The file's bytes as read: counted for progress, hashed when asked, and
/// whether the end was reached.
struct CountingReader<'a, R> {
    inner: R,
    count: &'a AtomicU64,
    hasher: Option<&'a mut StreamIdentity>,
    at_end: &'a mut bool,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if n == 0 && !buf.is_empty() {
            *self.at_end = true;
        }
        Ok(n)
    }
}
