//! The file ingest pipeline: reader thread -> decoder threads -> lake writer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use tracing::{info, warn};

use super::FileSourceConfig;
use super::reader::{
    Identity, InputFile, Resume, Work, expand_inputs, hash_file, probe_file, read_file,
};
use crate::builder::{BatchSink, ChunkShape, Counts, DeadLettersBuilder, TypedEventsBuilder};
use crate::decode::native::{native_dead_letter, parse_native_into};
use crate::decode::{DecodeState, decode_record};
use crate::error::{IngestError, Result};
use crate::event::{DeadLetter, EventRow, EventType, Position, Sink};
use crate::lake::{DEAD_LETTERS, EVENTS, Lake, LakeWriter};
use crate::writer_pool::WriterPool;

/// Live figures of a running ingest, for progress displays.
#[derive(Debug, Default)]
pub struct IngestProgress {
    pub bytes_total: AtomicU64,
    pub bytes_read: AtomicU64,
    pub events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
    pub commits: AtomicU64,
}

/// What happened to one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Read to the end and committed.
    Ingested,
    /// Read from a line after the start: an earlier run committed the lines before it.
    Resumed { from_line: u64 },
    /// The lake already holds every line of this file (same content hash).
    AlreadyIngested,
    /// The same content appeared earlier in this run.
    Duplicate { of: String },
    /// The file could not be opened or listed.
    Failed(String),
}

/// One input's line in the summary.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub outcome: FileOutcome,
    pub lines: u64,
    /// A problem that stopped reading part-way (a truncated gzip stream).
    pub error: Option<String>,
}

/// The result of an ingest run.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub files: Vec<FileReport>,
    pub counts: Counts,
    /// The first few dead letters: (position, reason).
    pub first_dead_letters: Vec<(String, String)>,
    pub commits: u64,
    pub bytes_written: i64,
    pub bytes_read: u64,
    pub elapsed: Duration,
}

impl IngestReport {
    /// Inputs that could be opened and read (fully or in part).
    pub fn readable_inputs(&self) -> usize {
        self.files
            .iter()
            .filter(|f| !matches!(f.outcome, FileOutcome::Failed(_)))
            .count()
    }
}

const FIRST_DEAD_LETTERS: usize = 5;

fn file_key(hash: &str) -> String {
    format!("fnwatch-file:{hash}")
}

fn file_done_key(hash: &str) -> String {
    format!("fnwatch-file-done:{hash}")
}

fn probe_key(probe: &str) -> String {
    format!("fnwatch-probe:{probe}")
}

enum Output {
    Decoded {
        seq: u64,
        file: usize,
        last_line: u64,
        /// Decoded events, each batch in (day, function, time) order.
        batches: Vec<RecordBatch>,
        dead: Vec<DeadLetter>,
        counts: Counts,
    },
    FileEnd {
        seq: u64,
        file: usize,
        lines: u64,
        identity: Option<Identity>,
        opened: bool,
        error: Option<String>,
        partial: Vec<u8>,
    },
    /// A chunk whose events could not be put in columns (a bug, not an
    /// input problem): the run stops before committing any of it.
    Failed { seq: u64, error: String },
}

impl Output {
    fn seq(&self) -> u64 {
        match self {
            Output::Decoded { seq, .. }
            | Output::FileEnd { seq, .. }
            | Output::Failed { seq, .. } => *seq,
        }
    }
}

struct Planned {
    input: InputFile,
    /// BLAKE3 of the file; `None` until the reader has read all of a new file.
    hash: Option<String>,
    probe: String,
    /// The probe of what the reader read, when it differs from `probe`.
    read_probe: Option<String>,
    resume: Resume,
    report_idx: usize,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Ingests files into the lake, exactly once per file content.
pub async fn ingest_files(
    lake: &mut Lake,
    cfg: &FileSourceConfig,
    progress: Arc<IngestProgress>,
) -> Result<IngestReport> {
    let started = Instant::now();
    let spool = tempfile::tempdir().map_err(|source| IngestError::Storage {
        path: std::env::temp_dir().display().to_string(),
        source,
    })?;
    let (inputs, failures) = expand_inputs(&cfg.inputs, spool.path());
    let mut report = IngestReport::default();
    for (path, why) in failures {
        info!(input = %path, error = %why, "input cannot be read");
        report.files.push(FileReport {
            path,
            outcome: FileOutcome::Failed(why),
            lines: 0,
            error: None,
        });
    }

    // Plan. Every file gets a probe (its size and ends). A file whose probe
    // neither the lake nor another input of this run has is new: it is read
    // from its first line and hashed on the way. Any other file (and a very
    // large one) is hashed first, and the lake says whether, and from which
    // line, to read it.
    let mut probed: Vec<(InputFile, String)> = Vec::new();
    for input in inputs {
        match probe_file(&input.path) {
            Ok(probe) => probed.push((input, probe)),
            Err(e) => report.files.push(FileReport {
                path: input.display.to_string(),
                outcome: FileOutcome::Failed(e.to_string()),
                lines: 0,
                error: None,
            }),
        }
    }
    let mut probe_inputs: HashMap<&str, usize> = HashMap::new();
    for (_, probe) in &probed {
        *probe_inputs.entry(probe.as_str()).or_default() += 1;
    }
    // A file large enough to need a commit part-way (the first one would
    // have to hash it anyway) is hashed first too.
    let large = cfg.commit_bytes.saturating_mul(8) as u64;
    let mut known_probes = Vec::with_capacity(probed.len());
    for (input, probe) in &probed {
        let known = input.size > large
            || probe_inputs.get(probe.as_str()).copied().unwrap_or(0) > 1
            || (!cfg.force
                && (!lake.records_file_probes()
                    || lake.txn_version(EVENTS, &probe_key(probe)).await?.is_some()
                    || lake
                        .txn_version(DEAD_LETTERS, &probe_key(probe))
                        .await?
                        .is_some()));
        known_probes.push(known);
    }
    let mut planned: Vec<Planned> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for ((input, probe), known) in probed.into_iter().zip(known_probes) {
        let fresh = Resume {
            skip_through: 0,
            suppress_dead_through: 0,
        };
        if !known {
            planned.push(Planned {
                report_idx: report.files.len(),
                input: input.clone(),
                hash: None,
                probe,
                read_probe: None,
                resume: fresh,
            });
            report.files.push(FileReport {
                path: input.display.to_string(),
                outcome: FileOutcome::Ingested,
                lines: 0,
                error: None,
            });
            continue;
        }
        let hash = match hash_file(&input.path) {
            Ok(h) => h,
            Err(e) => {
                report.files.push(FileReport {
                    path: input.display.to_string(),
                    outcome: FileOutcome::Failed(e.to_string()),
                    lines: 0,
                    error: None,
                });
                continue;
            }
        };
        let report_idx = report.files.len();
        if let Some(first) = seen.get(&hash) {
            report.files.push(FileReport {
                path: input.display.to_string(),
                outcome: FileOutcome::Duplicate { of: first.clone() },
                lines: 0,
                error: None,
            });
            continue;
        }
        seen.insert(hash.clone(), input.display.to_string());
        let mut resume = fresh;
        let mut outcome = FileOutcome::Ingested;
        if !cfg.force {
            if let Some(lines) = lake.txn_version(EVENTS, &file_done_key(&hash)).await? {
                report.files.push(FileReport {
                    path: input.display.to_string(),
                    outcome: FileOutcome::AlreadyIngested,
                    lines: lines.max(0) as u64,
                    error: None,
                });
                continue;
            }
            let events_lines = lake
                .txn_version(EVENTS, &file_key(&hash))
                .await?
                .unwrap_or(0);
            let dead_lines = lake
                .txn_version(DEAD_LETTERS, &file_key(&hash))
                .await?
                .unwrap_or(0);
            resume = Resume {
                skip_through: events_lines.max(0) as u64,
                suppress_dead_through: events_lines.max(dead_lines).max(0) as u64,
            };
            if events_lines > 0 {
                outcome = FileOutcome::Resumed {
                    from_line: events_lines as u64 + 1,
                };
            }
        }
        report.files.push(FileReport {
            path: input.display.to_string(),
            outcome,
            lines: 0,
            error: None,
        });
        planned.push(Planned {
            input,
            hash: Some(hash),
            probe,
            read_probe: None,
            resume,
            report_idx,
        });
    }
    progress
        .files_total
        .store(planned.len() as u64, Ordering::Relaxed);
    progress.bytes_total.store(
        planned.iter().map(|p| p.input.size).sum(),
        Ordering::Relaxed,
    );
    if planned.is_empty() {
        report.elapsed = started.elapsed();
        return Ok(report);
    }

    let threads = if cfg.decode_threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        cfg.decode_threads
    };
    let chunk_bytes = cfg.chunk_bytes.max(4096);
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Work>(threads * 2);
    // Chunk buffers the decoders hand back to the reader.
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<u8>>(threads * 2 + 2);
    // Room for about one run of decoded chunks (at least two chunks per
    // decoder), so decoders keep going while the lanes encode.
    let depth = (cfg.run_rows.saturating_mul(350) / chunk_bytes)
        .min(64)
        .max(threads * 2);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Output>(depth);

    // Reader.
    let reader_files: Vec<(InputFile, Resume, bool)> = planned
        .iter()
        .map(|p| (p.input.clone(), p.resume, p.hash.is_none()))
        .collect();
    // Lines up to the decompressed-record limit reach the decoder, which
    // takes CloudTrail log files (one line each, often over the record
    // limit) and refuses other long lines with their size.
    let max_line = cfg
        .limits
        .max_record_bytes
        .max(cfg.limits.max_decompressed_bytes);
    let reader_progress = progress.clone();
    let reader = std::thread::Builder::new()
        .name("fnwatch-read".into())
        .spawn(move || {
            let mut seq = 0u64;
            for (i, (input, resume, hash)) in reader_files.iter().enumerate() {
                if !read_file(
                    i,
                    input,
                    *resume,
                    *hash,
                    chunk_bytes,
                    max_line,
                    &mut seq,
                    &reader_progress.bytes_read,
                    &work_tx,
                    &spare_rx,
                ) {
                    break;
                }
            }
        })
        .map_err(|e| IngestError::Internal(format!("cannot start reader thread: {e}")))?;

    // Decoders.
    let ingested_at = now_us();
    let displays: Arc<Vec<Arc<str>>> =
        Arc::new(planned.iter().map(|p| p.input.display.clone()).collect());
    let mut decoders = Vec::new();
    for t in 0..threads {
        let rx = work_rx.clone();
        let tx = out_tx.clone();
        let displays = displays.clone();
        let spare = spare_tx.clone();
        let limits = cfg.limits;
        let h = std::thread::Builder::new()
            .name(format!("fnwatch-decode-{t}"))
            .spawn(move || decode_worker(rx, tx, spare, displays, limits, ingested_at))
            .map_err(|e| IngestError::Internal(format!("cannot start decoder thread: {e}")))?;
        decoders.push(h);
    }
    drop(work_rx);
    drop(spare_tx);
    drop(out_tx);

    // Writer: puts outputs in order, sorts runs, commits with positions.
    let mut writer = LakeWriter::new(lake, &cfg.write)?;
    writer.abort_between_commits = cfg.fail_between_commits;
    let mut flush = Flush {
        writer,
        pool: WriterPool::new(lake, &cfg.write, threads.clamp(1, 4))?,
        dead: DeadLettersBuilder::new(ingested_at),
        positions: HashMap::new(),
        done: HashMap::new(),
    };
    let mut pending: BTreeMap<u64, Output> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut run: Vec<RecordBatch> = Vec::new();
    let mut run_rows = 0usize;
    let mut result: Result<()> = Ok(());

    'outer: while let Some(out) = out_rx.recv().await {
        pending.insert(out.seq(), out);
        while let Some(out) = pending.remove(&next_seq) {
            next_seq += 1;
            match out {
                Output::Decoded {
                    file,
                    last_line,
                    batches,
                    dead: dls,
                    counts,
                    ..
                } => {
                    progress
                        .events
                        .fetch_add(counts.total_events(), Ordering::Relaxed);
                    progress
                        .dead_letters
                        .fetch_add(dls.len() as u64, Ordering::Relaxed);
                    report.counts.add(&counts);
                    for dl in dls {
                        note_dead_letter(&mut report, &dl);
                        flush.dead.push(dl);
                    }
                    for batch in batches {
                        if batch.num_rows() > 0 {
                            run_rows += batch.num_rows();
                            run.push(batch);
                        }
                    }
                    flush.positions.insert(file, last_line);
                }
                Output::FileEnd {
                    file,
                    lines,
                    identity,
                    opened,
                    error,
                    partial,
                    ..
                } => {
                    let p = &mut planned[file];
                    progress.files_done.fetch_add(1, Ordering::Relaxed);
                    if !opened {
                        // Gone since planning: nothing of it is read or recorded.
                        let why = error.unwrap_or_default();
                        info!(file = %p.input.display, error = %why, "input went away");
                        report.files[p.report_idx].outcome = FileOutcome::Failed(why);
                        continue;
                    }
                    let mut changed = None;
                    if let Some(id) = identity {
                        match &p.hash {
                            None => p.hash = Some(id.hash),
                            Some(h) if *h != id.hash => {
                                changed = Some(format!(
                                    "changed while it was read: its lines are recorded under \
                                     the hash taken at the first commit ({h}), not that of what \
                                     was read to the end ({})",
                                    id.hash
                                ));
                            }
                            Some(_) => {}
                        }
                        if id.probe != p.probe {
                            // Changed between planning and reading: the lake
                            // knows the content read by its own probe too.
                            p.read_probe = Some(id.probe);
                        }
                    }
                    if let Some(why) = &changed {
                        warn!(file = %p.input.display, "{why}");
                    }
                    let error = error.map(|e| format!("cannot be read past line {lines}: {e}"));
                    if let Some(err) = &error {
                        info!(file = %p.input.display, error = %err, "input ended early");
                        if lines + 1 > p.resume.suppress_dead_through {
                            let dl = DeadLetter::new(
                                format!("file {err}"),
                                &Position::file(p.input.display.clone(), lines + 1),
                                &partial,
                            );
                            note_dead_letter(&mut report, &dl);
                            report.counts.dead_letters += 1;
                            progress.dead_letters.fetch_add(1, Ordering::Relaxed);
                            flush.dead.push(dl);
                        }
                    }
                    let r = &mut report.files[p.report_idx];
                    r.lines = lines;
                    // A read error is also a dead letter; a change is only reported.
                    r.error = error.or(changed);
                    flush.positions.insert(file, lines);
                    flush.done.insert(file, lines);
                }
                Output::Failed { error, .. } => {
                    result = Err(IngestError::Internal(error));
                    break 'outer;
                }
            }
            if run_rows >= cfg.run_rows {
                run_rows = 0;
                if let Err(e) = flush.pool.submit(std::mem::take(&mut run)).await {
                    result = Err(e);
                    break 'outer;
                }
                if flush.pool.buffered_bytes() >= cfg.commit_bytes {
                    if let Err(e) = flush
                        .commit(lake, &mut planned, &mut report, &progress)
                        .await
                    {
                        result = Err(e);
                        break 'outer;
                    }
                    if cfg.fail_after_commits == Some(report.commits) {
                        warn!(commits = report.commits, "failpoint: aborting after commit");
                        std::process::abort();
                    }
                }
            }
        }
    }
    // Stop the pipeline before reporting any error, so threads do not linger.
    drop(out_rx);
    let _ = reader.join();
    for d in decoders {
        let _ = d.join();
    }
    result?;
    if next_seq > 0 && !pending.is_empty() {
        return Err(IngestError::Internal(format!(
            "{} decoded chunks were left out of order",
            pending.len()
        )));
    }
    flush.pool.submit(run).await?;
    if !flush.positions.is_empty() || !flush.dead.is_empty() {
        flush
            .commit(lake, &mut planned, &mut report, &progress)
            .await?;
    }
    report.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
    report.elapsed = started.elapsed();
    info!(
        events = report.counts.total_events(),
        dead_letters = report.counts.dead_letters,
        commits = report.commits,
        seconds = report.elapsed.as_secs_f64(),
        "ingest finished"
    );
    Ok(report)
}

fn note_dead_letter(report: &mut IngestReport, dl: &DeadLetter) {
    if report.first_dead_letters.len() < FIRST_DEAD_LETTERS {
        report
            .first_dead_letters
            .push((dl.position.to_string(), dl.reason.clone()));
    }
}

/// What the next commit gathers: the writers, and the dead letters and file
/// positions seen since the last commit.
struct Flush {
    writer: LakeWriter,
    pool: WriterPool,
    dead: DeadLettersBuilder,
    positions: HashMap<usize, u64>,
    done: HashMap<usize, u64>,
}

impl Flush {
    /// Commits everything written so far with the positions it covers, and
    /// counts the commit. Runs still in memory must be submitted first:
    /// positions cover every row seen.
    async fn commit(
        &mut self,
        lake: &mut Lake,
        planned: &mut [Planned],
        report: &mut IngestReport,
        progress: &IngestProgress,
    ) -> Result<()> {
        if !self.dead.is_empty() {
            self.writer.write_dead_letters(self.dead.finish()).await?;
        }
        let mut txns: Vec<(String, i64)> = Vec::new();
        for (&file, &lines) in &self.done {
            self.positions.entry(file).or_insert(lines);
        }
        for (file, lines) in self.positions.drain() {
            let p = &mut planned[file];
            let hash = match &p.hash {
                Some(h) => h.clone(),
                None => {
                    // A new file the reader has not read to its end (a commit
                    // part-way through it, or a read error): hash it now.
                    let path = p.input.path.clone();
                    let h = tokio::task::spawn_blocking(move || hash_file(&path))
                        .await
                        .map_err(|e| IngestError::Internal(format!("hashing a file: {e}")))??;
                    p.hash = Some(h.clone());
                    h
                }
            };
            txns.push((file_key(&hash), lines as i64));
            txns.push((probe_key(&p.probe), lines as i64));
            if let Some(probe) = &p.read_probe {
                txns.push((probe_key(probe), lines as i64));
            }
            if let Some(done) = self.done.remove(&file) {
                txns.push((file_done_key(&hash), done as i64));
            }
        }
        // Files alike at both ends share a probe: one transaction per key.
        txns.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        txns.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut meta = serde_json::Map::new();
        meta.insert("fnwatch.operation".into(), "ingest-files".into());
        let adds = self.pool.flush().await?;
        let summary = self.writer.commit(lake, adds, &txns, meta).await?;
        info!(
            events_version = ?summary.events_version,
            dead_letters_version = ?summary.dead_letters_version,
            files = summary.files_added,
            bytes = summary.bytes_added,
            "committed to the lake"
        );
        report.commits += 1;
        report.bytes_written += summary.bytes_added;
        progress.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn decode_worker(
    rx: crossbeam_channel::Receiver<Work>,
    tx: tokio::sync::mpsc::Sender<Output>,
    spare: crossbeam_channel::Sender<Vec<u8>>,
    displays: Arc<Vec<Arc<str>>>,
    limits: crate::decode::Limits,
    ingested_at: i64,
) {
    let mut state = DecodeState::new(limits);
    // The columns' sizes in the last chunk, to size the next one's.
    let mut shape = ChunkShape::default();
    let cloudwatch_marker = memchr::memmem::Finder::new(b"\"messageType\"");
    // A CloudTrail log file or EventBridge event is not a native event
    // either: looked for only in lines that fail as one.
    let cloudtrail_markers = [
        memchr::memmem::Finder::new(b"\"Records\""),
        memchr::memmem::Finder::new(b"\"detail-type\""),
        memchr::memmem::Finder::new(b"\"digestStartTime\""),
        memchr::memmem::Finder::new(b"\"eventVersion\""),
    ];
    let mut current_file = usize::MAX;
    // Lines of the other shapes; kept across chunks, as most chunks have none.
    let mut sink = BatchSink::new(ingested_at);
    for work in rx {
        let out = match work {
            Work::Lines {
                seq,
                file,
                first_line,
                data,
                suppress_dead_through,
            } => {
                if file != current_file {
                    state = DecodeState::new(limits);
                    current_file = file;
                }
                // Native events (almost every line of a telemetry file) are
                // parsed one at a time into a row borrowing from the chunk,
                // appended to the columns at once, and laid out in (day,
                // function, time) order at the end of the chunk, so the
                // chunk can be written as a sorted run as it is; every other
                // line takes the general decoder.
                let mut native = TypedEventsBuilder::with_shape(ingested_at, &shape);
                let mut line = first_line;
                let mut pos = Position::file(displays[file].clone(), line);
                // A chunk that is valid UTF-8 as a whole (nearly every one)
                // is checked once rather than line by line.
                let chunk_text = simdutf8::basic::from_utf8(&data).ok();
                let mut start = 0;
                while let Some(i) = memchr::memchr(b'\n', &data[start..]) {
                    let (mut from, mut to) = (start, start + i);
                    start = to + 1;
                    if to > from && data[to - 1] == b'\r' {
                        to -= 1;
                    }
                    if line == 1 && data[from..to].starts_with(b"\xEF\xBB\xBF") {
                        // A byte order mark some editors put at the start of a file.
                        from += 3;
                    }
                    let l = &data[from..to];
                    pos.set_line(line);
                    let text = chunk_text.and_then(|t| t.get(from..to));
                    match plain_native_line(l, text, &limits) {
                        Some(text) => {
                            let mut row = EventRow::new(EventType::Log, 0, "");
                            // A CloudWatch Logs payload has a top-level
                            // `messageType`, which would be an unknown key
                            // (in `extra`) or make the event invalid: only
                            // then is the line looked at again.
                            match parse_native_into(text, &mut row) {
                                Ok(())
                                    if !row.extra.as_deref().is_some_and(|e| {
                                        cloudwatch_marker.find(e.as_bytes()).is_some()
                                    }) =>
                                {
                                    sink.counts.events[row.event_type.index()] += 1;
                                    native.append(&row);
                                }
                                _ if cloudwatch_marker.find(l).is_some()
                                    || cloudtrail_markers.iter().any(|m| m.find(l).is_some()) =>
                                {
                                    decode_record(l, &pos, &mut state, &mut sink)
                                }
                                Ok(()) => {
                                    sink.counts.events[row.event_type.index()] += 1;
                                    native.append(&row);
                                }
                                Err(e) => sink.dead_letter(native_dead_letter(e, &pos, text)),
                            }
                        }
                        None => decode_record(l, &pos, &mut state, &mut sink),
                    }
                    line += 1;
                }
                // Everything decoded is copied out of the chunk by now.
                let _ = spare.try_send(data);
                let mut batches = match native.finish_sorted(Some(&mut shape)) {
                    Ok(batch) => vec![batch],
                    Err(e) => {
                        // Not expected: the builders and the schema are defined together.
                        let error = format!(
                            "the events decoded from {} lines {first_line} to {} cannot be laid out: {e}",
                            displays[file],
                            line.saturating_sub(1)
                        );
                        if tx.blocking_send(Output::Failed { seq, error }).is_err() {
                            return;
                        }
                        // The run stops at this chunk; nothing of it goes on.
                        sink = BatchSink::new(ingested_at);
                        continue;
                    }
                };
                if !sink.events.is_empty() {
                    let others = sink.events.finish();
                    // Unsorted, the writer sorts it (and reports what failed).
                    match crate::lake::sort_events(std::slice::from_ref(&others)) {
                        Ok(sorted) => batches.push(sorted),
                        Err(_) => batches.push(others),
                    }
                }
                let mut dead = std::mem::take(&mut sink.dead);
                let mut counts = std::mem::take(&mut sink.counts);
                if suppress_dead_through > 0 {
                    dead.retain(|d| match &d.position.origin {
                        crate::event::Origin::File { line, .. } => *line > suppress_dead_through,
                        _ => true,
                    });
                    counts.dead_letters = dead.len() as u64;
                }
                Output::Decoded {
                    seq,
                    file,
                    last_line: line.saturating_sub(1),
                    batches,
                    dead,
                    counts,
                }
            }
            Work::Oversized {
                seq,
                file,
                line,
                prefix,
                size,
                suppress,
            } => {
                let mut dead = Vec::new();
                let mut counts = Counts::default();
                if !suppress {
                    counts.dead_letters = 1;
                    // CloudTrail log files (one line each) are taken up to
                    // the decompressed-record limit, other lines up to the
                    // record limit: name the limit that applied.
                    let why = if crate::decode::is_cloudtrail_file(&prefix) {
                        format!(
                            "CloudTrail log file too large: {size} bytes (limit {} bytes for a CloudTrail file); none of its records were read, only its first {} bytes are kept here",
                            limits.max_decompressed_bytes,
                            prefix.len()
                        )
                    } else {
                        format!(
                            "record too large: line is {size} bytes (limit {} bytes); only its first {} bytes are kept here",
                            limits.max_record_bytes,
                            prefix.len()
                        )
                    };
                    dead.push(DeadLetter::new(
                        why,
                        &Position::file(displays[file].clone(), line),
                        &prefix,
                    ));
                }
                Output::Decoded {
                    seq,
                    file,
                    last_line: line,
                    batches: Vec::new(),
                    dead,
                    counts,
                }
            }
            Work::FileEnd {
                seq,
                file,
                lines,
                identity,
                opened,
                error,
                partial,
            } => Output::FileEnd {
                seq,
                file,
                lines,
                identity,
                opened,
                error,
                partial,
            },
        };
        if tx.blocking_send(out).is_err() {
            return;
        }
    }
}

/// The text of a line that is one native event unless it holds CloudWatch
/// Logs' `messageType` key: a JSON object starting right at the line's
/// start, within the record size limit, valid UTF-8. The caller hands a line
/// with that key to [`decode_record`], as anything else (gzip, KPL, arrays,
/// bad bytes) goes there.
/// `text` is the line as text when it is already known to be valid UTF-8.
fn plain_native_line<'a>(
    line: &'a [u8],
    text: Option<&'a str>,
    limits: &crate::decode::Limits,
) -> Option<&'a str> {
    if line.first() != Some(&b'{') || line.len() > limits.max_record_bytes {
        return None;
    }
    text.or_else(|| simdutf8::basic::from_utf8(line).ok())
}
