//! The in-function producer of fnwatch telemetry (contract v1.1): a Lambda
//! *external extension*, `fnwatch-sensor`, and the runtime hooks that feed it.
//!
//! Inside a function's sandbox the extension
//! - registers with the Lambda Extensions API for `INVOKE` and `SHUTDOWN`
//!   ([`lambda`]) and subscribes to the Telemetry API's platform records, which
//!   Lambda pushes to a local HTTP listener ([`telemetry`]);
//! - reads the runtime's CPU time from `/proc` at `INVOKE` and at
//!   `platform.runtimeDone` ([`cpu`]), so every `invocation` event carries
//!   `cpu_ms` beside duration, memory, init and status;
//! - receives the in-process hooks' events (DNS lookups, connections, child
//!   processes, file opens, a sample of the triggering event) as JSON lines on a
//!   unix datagram socket ([`intake`]): untrusted input, size-capped and
//!   validated field by field, every rejection counted;
//! - stamps each event with the invocation's request id and the function's
//!   identity ([`state`]) and ships it from a bounded buffer to stdout or a
//!   Kinesis stream ([`sink`]), after the function's response, flushing on
//!   `SHUTDOWN` within its deadline.
//!
//! Start reading at `main.rs` (the wiring) and [`state::State`] (what happens
//! to each message). The hooks live under `sensor/hooks/`.

pub mod config;
pub mod cpu;
pub mod error;
pub mod http;
pub mod intake;
pub mod lambda;
pub mod sink;
pub mod state;
pub mod telemetry;

pub use error::{Error, Result};
