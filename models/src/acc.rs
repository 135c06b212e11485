//! Per-invocation accumulation: the events of one request, whichever batch
//! they arrive in, folded into counts and the invocation's own figures.

use std::collections::HashMap;

use crate::numeric::Measures;
use crate::rows::{Rows, f64_at, i64_at};

/// Invocation outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Unknown,
    Success,
    Error,
    Timeout,
    Crash,
}

impl Status {
    pub fn parse(s: &str) -> Status {
        match s {
            "success" => Status::Success,
            "error" | "failure" => Status::Error,
            "timeout" => Status::Timeout,
            "crash" => Status::Crash,
            _ => Status::Unknown,
        }
    }
}

/// What is known of one request.
#[derive(Debug, Clone, Default)]
pub struct ReqAcc {
    pub func: u32,
    /// Where the request id is in the table's arena ([`ReqTable::id`]).
    pub id_at: (u32, u32),
    /// Time of the `invocation` event (its end), if one was seen.
    pub inv_us: Option<i64>,
    pub duration_ms: f64,
    pub cpu_ms: Option<f64>,
    pub max_memory_mb: f64,
    pub timeout_ms: Option<i64>,
    pub status: Status,
    pub cold: bool,
    /// First and last sensor event (not the invocation itself).
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    pub dns: u32,
    pub txt: u32,
    pub net: u32,
    pub proc: u32,
    pub file: u32,
    pub api: u32,
    pub denied: u32,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// A connection to a known peer with nothing received: waiting on it.
    pub waiting_on: Option<Box<str>>,
    pub sleep_child: bool,
}

impl ReqAcc {
    pub fn measures(&self) -> Measures {
        Measures {
            duration_ms: self.duration_ms,
            cpu_ms: self.cpu_ms,
            max_memory_mb: self.max_memory_mb,
            bytes_out: self.bytes_out as f64,
            bytes_in: self.bytes_in as f64,
            dns: self.dns as f64,
            net: self.net as f64,
            proc: self.proc as f64,
            file: self.file as f64,
            api: self.api as f64,
            cold: self.cold,
        }
    }

    pub fn is_timeout(&self) -> bool {
        self.status == Status::Timeout
            || self.timeout_ms.is_some_and(|t| {
                t > 0 && self.duration_ms >= t as f64 * 0.995 && self.status != Status::Success
            })
    }

    /// Why a timed-out invocation looks idle (under 3% CPU and no I/O in the
    /// last 90% of its run; without a CPU figure, no I/O in the last 95%),
    /// or `None` when it was busy.
    pub fn idle(&self) -> Option<String> {
        let end = self.inv_us?; // adjusted below when it is the start
        if self.duration_ms <= 0.0 {
            return None;
        }
        let dur_us = (self.duration_ms * 1000.0) as i64;
        // Sensors stamp the invocation at its end; some stamp its start,
        // which shows as sensor events after it.
        let (start, end) = match self.last_us {
            Some(last) if last > end + 1000 => (end, end + dur_us),
            _ => (end - dur_us, end),
        };
        let quiet_from = self.last_us.unwrap_or(start).max(start);
        let quiet_share = ((end - quiet_from) as f64 / (self.duration_ms * 1000.0)).clamp(0.0, 1.0);
        match self.cpu_ms {
            Some(cpu) => {
                let share = cpu / self.duration_ms;
                (share < 0.03 && quiet_share > 0.9).then(|| {
                    format!(
                        "used {:.1}% CPU and did no I/O for the last {:.0}% of its {:.1} s run",
                        share * 100.0,
                        quiet_share * 100.0,
                        self.duration_ms / 1000.0
                    )
                })
            }
            None => (quiet_share > 0.95).then(|| {
                format!(
                    "did no I/O for the last {:.0}% of its {:.1} s run",
                    quiet_share * 100.0,
                    self.duration_ms / 1000.0
                )
            }),
        }
    }
}

/// All requests of a pass, by request id. Ids live in one arena string and
/// are found by a 64-bit hash (checked against the arena), so a million
/// requests cost no per-request allocation.
#[derive(Default)]
pub struct ReqTable {
    index: HashMap<u64, u32, foldhash::fast::RandomState>,
    /// Ids whose hash collided with another id's (practically never).
    spill: HashMap<Box<str>, u32>,
    hasher: foldhash::fast::RandomState,
    arena: String,
    pub reqs: Vec<ReqAcc>,
    /// The slot returned last: an invocation's events are mostly next to
    /// each other, and comparing ids costs less than a lookup.
    last: Option<u32>,
}

impl ReqTable {
    /// The slot of a request, created on first sight.
    pub fn slot(&mut self, func: u32, request_id: &str) -> u32 {
        if let Some(last) = self.last
            && self.id(last) == request_id
        {
            return last;
        }
        let i = self.lookup(func, request_id);
        self.last = Some(i);
        i
    }

    fn lookup(&mut self, func: u32, request_id: &str) -> u32 {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(request_id);
        if let Some(&i) = self.index.get(&h) {
            if self.id(i) == request_id {
                return i;
            }
            if let Some(&j) = self.spill.get(request_id) {
                return j;
            }
            let j = self.push(func, request_id);
            self.spill.insert(request_id.into(), j);
            return j;
        }
        let i = self.push(func, request_id);
        self.index.insert(h, i);
        i
    }

    fn push(&mut self, func: u32, request_id: &str) -> u32 {
        let at = (self.arena.len() as u32, request_id.len() as u32);
        self.arena.push_str(request_id);
        let i = self.reqs.len() as u32;
        self.reqs.push(ReqAcc {
            func,
            id_at: at,
            ..ReqAcc::default()
        });
        i
    }

    /// The request id of slot `i`.
    pub fn id(&self, i: u32) -> &str {
        let Some(r) = self.reqs.get(i as usize) else {
            return "";
        };
        let (start, len) = (r.id_at.0 as usize, r.id_at.1 as usize);
        self.arena.get(start..start + len).unwrap_or("")
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut ReqAcc> {
        self.reqs.get_mut(i as usize)
    }
}

/// Folds an `invocation` row into its request.
pub fn fold_invocation(acc: &mut ReqAcc, rows: &Rows<'_>, i: usize, time_us: i64) {
    // Two reports of one invocation (sensor and logs): keep the richer figures.
    acc.inv_us = Some(acc.inv_us.map_or(time_us, |t| t.max(time_us)));
    if let Some(d) = f64_at(rows.duration_ms, i) {
        acc.duration_ms = acc.duration_ms.max(d);
    }
    if let Some(c) = f64_at(rows.cpu_ms, i) {
        acc.cpu_ms = Some(c);
    }
    if let Some(m) = i64_at(rows.max_memory_mb, i) {
        acc.max_memory_mb = acc.max_memory_mb.max(m as f64);
    }
    if let Some(t) = i64_at(rows.timeout_ms, i) {
        acc.timeout_ms = Some(t);
    }
    if let Some(s) = rows.status.get(i) {
        let s = Status::parse(s);
        if acc.status == Status::Unknown || s == Status::Timeout {
            acc.status = s;
        }
    }
    if f64_at(rows.init_ms, i).is_some() {
        acc.cold = true;
    }
}

/// Notes a sensor event's time.
pub fn touch(acc: &mut ReqAcc, time_us: i64) {
    acc.first_us = Some(acc.first_us.map_or(time_us, |t| t.min(time_us)));
    acc.last_us = Some(acc.last_us.map_or(time_us, |t| t.max(time_us)));
}
