//! The bounded buffer of events and their shipping: JSON lines on stdout
//! (CloudWatch Logs carries the extension's stdout, and a subscription filter
//! the lines on to the stream), or `PutRecords` to a Kinesis stream.
//!
//! Shipping happens when the extension asks (after a response, at shutdown)
//! or when the buffer passes half full, never on the path of a response.
//! Several events go into one Kinesis record as JSON Lines (section 1 of the
//! contract), which keeps a busy function well under a shard's 1,000
//! records a second; the partition key is the function's name.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::io::AsyncWriteExt;

/// Most bytes of events packed in one Kinesis record.
const RECORD_BYTES: usize = 256 * 1024;
/// Most records (and bytes) in one PutRecords call.
const CALL_RECORDS: usize = 500;
const CALL_BYTES: usize = 4 * 1024 * 1024;
/// Tries of a record before it is counted lost.
const ATTEMPTS: u32 = 5;

/// Counters of what happened to events (cumulative since the extension started).
#[derive(Debug, Default)]
pub struct Counters {
    pub queued: AtomicU64,
    pub shipped: AtomicU64,
    /// Dropped because the buffer was full.
    pub overflow: AtomicU64,
    /// Lost after every retry (or too large for a record).
    pub failed: AtomicU64,
}

/// The buffer between the state and the shipper.
#[derive(Debug)]
pub struct Queue {
    items: Mutex<VecDeque<Vec<u8>>>,
    cap: usize,
    pub counters: Counters,
    high_water: tokio::sync::Notify,
}

impl Queue {
    pub fn new(cap: usize) -> Arc<Queue> {
        Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            cap,
            counters: Counters::default(),
            high_water: tokio::sync::Notify::new(),
        })
    }

    /// Adds one event's JSON. An `essential` event (an invocation, one per
    /// invocation) is always kept; another is dropped and counted when the
    /// buffer is full.
    pub fn push(&self, line: Vec<u8>, essential: bool) -> bool {
        let mut q = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= self.cap && !essential {
            self.counters.overflow.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.push_back(line);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if q.len() == self.cap / 2 {
            self.high_water.notify_one();
        }
        true
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub fn take_all_for_tests(&self) -> Vec<Vec<u8>> {
        self.take_all()
    }

    fn take_all(&self) -> Vec<Vec<u8>> {
        let mut q = self.items.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }
}

/// Where events go.
pub enum Output {
    Stdout,
    Kinesis {
        client: Client,
        stream: String,
        partition_key: String,
    },
}

/// Ships the queue; one shipping at a time.
pub struct Shipper {
    queue: Arc<Queue>,
    output: Output,
    lock: tokio::sync::Mutex<()>,
}

impl Shipper {
    pub fn new(queue: Arc<Queue>, output: Output) -> Arc<Shipper> {
        Arc::new(Shipper {
            queue,
            output,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Ships everything queued now. Runs in a task of its own (see
    /// [`Shipper::flush`]) so that a caller's deadline never cuts a call in half.
    pub async fn ship_all(self: Arc<Self>) {
        let _one = self.lock.lock().await;
        let events = self.queue.take_all();
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        let lost = match &self.output {
            Output::Stdout => write_stdout(&events).await,
            Output::Kinesis {
                client,
                stream,
                partition_key,
            } => put_kinesis(client, stream, partition_key, events).await,
        };
        let c = &self.queue.counters;
        c.shipped.fetch_add(n - lost, Ordering::Relaxed);
        c.failed.fetch_add(lost, Ordering::Relaxed);
    }

    /// Ships what is queued and waits at most `within` for it.
    pub async fn flush(self: &Arc<Self>, within: Duration) -> bool {
        let task = tokio::spawn(self.clone().ship_all());
        tokio::time::timeout(within, task).await.is_ok()
    }

    /// Ships whenever the buffer passes half full.
    pub fn ship_at_high_water(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.queue.high_water.notified().await;
                me.clone().ship_all().await;
            }
        });
    }
}

async fn write_stdout(events: &[Vec<u8>]) -> u64 {
    let mut buf = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum());
    for e in events {
        buf.extend_from_slice(e);
        buf.push(b'\n');
    }
    let mut out = tokio::io::stdout();
    match async {
        out.write_all(&buf).await?;
        out.flush().await
    }
    .await
    {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, events = events.len(), "writing events to stdout failed; they are lost");
            events.len() as u64
        }
    }
}

/// Packs events into records of JSON Lines: (events in it, bytes).
pub fn pack(events: Vec<Vec<u8>>, max: usize) -> (Vec<(u64, Vec<u8>)>, u64) {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut too_big = 0;
    for e in events {
        if e.len() > max {
            too_big += 1;
            continue;
        }
        match out.last_mut() {
            Some((n, r)) if r.len() + 1 + e.len() <= max => {
                r.push(b'\n');
                r.extend_from_slice(&e);
                *n += 1;
            }
            _ => out.push((1, e)),
        }
    }
    (out, too_big)
}

/// Puts the events; returns how many were lost.
async fn put_kinesis(client: &Client, stream: &str, key: &str, events: Vec<Vec<u8>>) -> u64 {
    let (records, mut lost) = pack(events, RECORD_BYTES);
    if lost > 0 {
        tracing::error!(
            events = lost,
            "events larger than a Kinesis record were dropped"
        );
    }
    let mut pending: VecDeque<(u64, Vec<u8>)> = records.into();
    let mut attempt = 0u32;
    // Records of the last call to put again.
    let mut retry: Vec<(u64, Vec<u8>)> = Vec::new();
    while !pending.is_empty() || !retry.is_empty() {
        let batch: Vec<(u64, Vec<u8>)> = if retry.is_empty() {
            attempt = 0;
            let mut b = Vec::new();
            let mut bytes = 0;
            while let Some((_, r)) = pending.front() {
                if b.len() == CALL_RECORDS || (bytes + r.len() > CALL_BYTES && !b.is_empty()) {
                    break;
                }
                bytes += r.len();
                if let Some(x) = pending.pop_front() {
                    b.push(x);
                }
            }
            b
        } else {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            std::mem::take(&mut retry)
        };
        let entries: Vec<PutRecordsRequestEntry> = batch
            .iter()
            .filter_map(|(_, data)| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(data.clone()))
                    .partition_key(key)
                    .build()
                    .ok()
            })
            .collect();
        let result = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) => {
                let outcomes = out.records();
                for (i, rec) in batch.into_iter().enumerate() {
                    let failed = outcomes.get(i).is_none_or(|o| o.error_code().is_some());
                    if failed {
                        retry.push(rec);
                    }
                }
                if !retry.is_empty() {
                    tracing::warn!(
                        records = retry.len(),
                        attempt = attempt + 1,
                        stream,
                        "PutRecords: some records failed; retrying them"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_kinesis::error::DisplayErrorContext(&e), attempt = attempt + 1, stream, "PutRecords failed; retrying");
                retry = batch;
            }
        }
        if !retry.is_empty() && attempt + 1 >= ATTEMPTS {
            let n: u64 = retry.iter().map(|(n, _)| n).sum();
            tracing::error!(
                events = n,
                stream,
                "events could not be put after {ATTEMPTS} tries; they are lost"
            );
            lost += n;
            retry.clear();
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_lines_into_records_and_drops_only_the_oversized() {
        let ev = |n: usize| vec![b'x'; n];
        let (recs, big) = pack(vec![ev(4), ev(4), ev(20), ev(3), ev(9)], 10);
        assert_eq!(big, 1);
        assert_eq!(
            recs,
            vec![(2, b"xxxx\nxxxx".to_vec()), (1, ev(3)), (1, ev(9))]
        );
    }

    #[test]
    fn a_full_buffer_drops_and_counts_all_but_invocations() {
        let q = Queue::new(16);
        for _ in 0..20 {
            q.push(b"{}".to_vec(), false);
        }
        assert!(q.push(b"{}".to_vec(), true));
        assert_eq!(q.len(), 17);
        assert_eq!(q.counters.overflow.load(Ordering::Relaxed), 4);
    }
}
