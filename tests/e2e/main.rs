//! End-to-end tests of the `fnwatch` binary: real files in, a real Delta lake
//! on disk, SQL out. One test binary, one module per scenario.

#![allow(clippy::unwrap_used)]

mod bad_input;
mod cloudtrail;
mod common;
mod detection;
mod inventory;
mod kinesis;
mod kinesis_harness;
mod lake;
mod outputs;
mod queries;
mod receivers;
mod reports;
mod s3;
mod s3_harness;
mod sensor;
mod server;
mod shapes;
mod shell_lines;
