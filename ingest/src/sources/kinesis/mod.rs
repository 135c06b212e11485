//! The Kinesis source: a long-lived worker that reads every shard of a stream
//! and commits records to the lake exactly once (see `worker`).

pub mod client;

pub use client::{
    FaultyKinesis, IteratorStart, KinesisApi, KinesisEndpoint, KinesisError, KinesisRecord,
    KinesisTimeouts, PutOutcome, RecordsPage, SdkKinesis, ShardInfo,
};
pub mod checkpoint;
pub mod lease;
pub mod metrics;
pub mod worker;

pub use worker::{Clock, FailPoints, KinesisSourceConfig, StartFrom, Worker, WorkerReport};
