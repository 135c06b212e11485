//! Several [`EventsLane`]s writing sorted runs at once, each on its own task:
//! sorting and Parquet encoding are the costly half of ingest, and one lane
//! alone would leave a core idle while the decoders wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use deltalake::kernel::Add;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{IngestError, Result};
use crate::lake::{EventsLane, Lake, WriteOptions};

enum LaneMsg {
    Run(Vec<RecordBatch>),
    Flush(oneshot::Sender<Result<Vec<Add>>>),
}

struct LaneHandle {
    tx: mpsc::Sender<LaneMsg>,
    bytes: Arc<AtomicUsize>,
    task: Option<JoinHandle<Result<()>>>,
}

/// Round-robin pool of event writers; [`flush`](Self::flush) closes the files
/// of all of them for one commit.
pub struct WriterPool {
    lanes: Vec<LaneHandle>,
    next: usize,
}

async fn lane_task(
    mut lane: EventsLane,
    mut rx: mpsc::Receiver<LaneMsg>,
    bytes: Arc<AtomicUsize>,
) -> Result<()> {
    while let Some(msg) = rx.recv().await {
        match msg {
            LaneMsg::Run(run) => {
                lane.write_run(&run).await?;
                bytes.store(lane.buffered_bytes(), Ordering::Relaxed);
            }
            LaneMsg::Flush(reply) => {
                let r = lane.flush().await;
                bytes.store(0, Ordering::Relaxed);
                let _ = reply.send(r);
            }
        }
    }
    Ok(())
}

impl WriterPool {
    /// A pool of `lanes` writers (at least one). Must be called inside a Tokio runtime.
    pub fn new(lake: &Lake, opts: &WriteOptions, lanes: usize) -> Result<WriterPool> {
        let mut handles = Vec::new();
        for _ in 0..lanes.max(1) {
            let lane = EventsLane::new(lake, opts)?;
            let (tx, rx) = mpsc::channel(1);
            let bytes = Arc::new(AtomicUsize::new(0));
            let task = tokio::spawn(lane_task(lane, rx, bytes.clone()));
            handles.push(LaneHandle {
                tx,
                bytes,
                task: Some(task),
            });
        }
        Ok(WriterPool {
            lanes: handles,
            next: 0,
        })
    }

    /// The error a lane stopped with (its channel closed).
    async fn lane_error(lane: &mut LaneHandle) -> IngestError {
        match lane.task.take() {
            Some(t) => match t.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => IngestError::Internal("an events writer stopped early".into()),
                Err(e) => IngestError::Internal(format!("an events writer failed: {e}")),
            },
            None => IngestError::Internal("an events writer stopped earlier".into()),
        }
    }

    /// Hands a run to the next lane, waiting while that lane is busy with its previous one.
    pub async fn submit(&mut self, run: Vec<RecordBatch>) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let i = self.next;
        self.next = (self.next + 1) % self.lanes.len();
        let lane = &mut self.lanes[i];
        if lane.tx.send(LaneMsg::Run(run)).await.is_err() {
            return Err(Self::lane_error(lane).await);
        }
        Ok(())
    }

    /// Encoded bytes written by all lanes since the last flush (as of their last run).
    pub fn buffered_bytes(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| l.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits for every submitted run, closes all open files and returns their `add` actions.
    pub async fn flush(&mut self) -> Result<Vec<Add>> {
        let mut replies = Vec::with_capacity(self.lanes.len());
        for lane in &mut self.lanes {
            let (tx, rx) = oneshot::channel();
            if lane.tx.send(LaneMsg::Flush(tx)).await.is_err() {
                return Err(Self::lane_error(lane).await);
            }
            replies.push(rx);
        }
        let mut adds = Vec::new();
        for (i, rx) in replies.into_iter().enumerate() {
            match rx.await {
                Ok(r) => adds.extend(r?),
                Err(_) => return Err(Self::lane_error(&mut self.lanes[i]).await),
            }
        }
        Ok(adds)
    }
}
