//! What the extension knows about the sandbox, and what each message does
//! to it: invocations from the Extensions and Telemetry APIs become
//! `invocation` events, the hooks' messages become stamped events.
//!
//! The wall clock is not read here: every method that needs the time is
//! given it (`now_ms`, epoch milliseconds).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use crate::cpu::{Proc, Reading};
use crate::intake::{Message, Reject};
use crate::sink::Queue;
use crate::telemetry::{Item, Record};

/// Invocations remembered at once (older ones are finished as they are).
const MAX_OPEN: usize = 64;
/// Invocations a hook message may still name after they closed (a message
/// late to the socket belongs to the invocation it was sent in).
const MAX_RECENT: usize = 64;
/// Hook events held until their invocation is known.
const MAX_PRE_INVOKE: usize = 1024;
/// How far a hook's own timestamp may be from the extension's clock before
/// the extension's is used instead.
const MAX_SKEW_MS: f64 = 300_000.0;

/// Who the events are about.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub function: String,
    pub version: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub memory_mb: Option<i64>,
}

/// A sample of the triggering event: the event, its size, its trigger.
type Sample = (Value, Option<i64>, Option<String>);

#[derive(Debug, Default)]
struct Inv {
    request_id: String,
    deadline_ms: i64,
    invoked_ms: i64,
    start_ms: Option<i64>,
    cpu_start: Option<Reading>,
    /// The latest reading while it ran (for when the runtime is gone at the end).
    cpu_last: Option<Reading>,
    cpu_ms: Option<f64>,
    done: bool,
    done_time: Option<String>,
    status: Option<String>,
    error_type: Option<String>,
    duration_ms: Option<f64>,
    sample: Option<Sample>,
    cold: bool,
}

/// Counters of the hooks' messages.
#[derive(Debug, Default, Clone)]
pub struct HookStats {
    pub accepted: u64,
    pub rejected: HashMap<&'static str, u64>,
    /// Events the hooks said they could not send.
    pub hook_dropped: u64,
    /// `hello`s from processes that are not the runtime (ignored).
    pub false_hellos: u64,
    pub telemetry_bad: u64,
    pub invocations: u64,
}

/// The sandbox as the extension sees it.
pub struct State {
    ident: Identity,
    proc_: Proc,
    /// The process that started the extension and the runtime: the
    /// sandbox's init (`/var/rapid/init` in Lambda).
    init_pid: Option<u32>,
    runtime_pid: Option<u32>,
    queue: Arc<Queue>,
    open: VecDeque<Inv>,
    current: Option<String>,
    /// The latest invocations, open or closed, with when each was invoked
    /// (epoch ms), oldest first.
    recent: VecDeque<(String, i64)>,
    /// Hook events that came before the invocation they belong to was
    /// known: during init, or racing ahead of `INVOKE` (time, fields, init).
    held: Vec<(f64, Map<String, Value>, bool)>,
    /// Event samples that raced ahead of their `INVOKE`.
    early_samples: Vec<(String, Sample)>,
    /// The reading at the last `runtimeDone`: the runtime rests from there
    /// to the next invocation.
    cpu_rest: Option<Reading>,
    init_ms: Option<f64>,
    seen_invoke: bool,
    stats: HookStats,
    done_tx: tokio::sync::watch::Sender<u64>,
}

/// Lambda's `runtimeDone` status in the contract's words.
pub fn status_of(s: &str) -> &'static str {
    match s {
        "success" => "success",
        "timeout" => "timeout",
        "error" => "error",
        // A runtime failure (Runtime.ExitError and the like).
        _ => "crash",
    }
}

/// Epoch milliseconds to RFC 3339 (UTC, microseconds).
pub fn rfc3339_ms(ms: f64) -> String {
    let us = (ms * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ms(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

impl State {
    pub fn new(ident: Identity, proc_: Proc, queue: Arc<Queue>) -> State {
        let (done_tx, _) = tokio::sync::watch::channel(0);
        State {
            ident,
            proc_,
            init_pid: None,
            runtime_pid: None,
            queue,
            open: VecDeque::new(),
            current: None,
            recent: VecDeque::new(),
            held: Vec::new(),
            early_samples: Vec::new(),
            cpu_rest: None,
            init_ms: None,
            seen_invoke: false,
            stats: HookStats::default(),
            done_tx,
        }
    }

    /// Names the sandbox's init (the extension's own parent): only one of
    /// its children can be the runtime.
    pub fn with_init_pid(mut self, pid: u32) -> State {
        self.init_pid = Some(pid);
        self
    }

    /// Whether a `hello` claiming `pid` is the runtime's. The claim is
    /// untrusted (any process in the sandbox can write to the socket, and
    /// every hooked child process runs the hook), so it is believed only when
    /// no live runtime is known yet (a process cannot take over a runtime
    /// that is still there: the runtime's own hook speaks first, at start)
    /// and `pid` is a child of the sandbox's init, as the runtime is (the
    /// wrapper and AWS's bootstraps `exec` it), never a process the function
    /// started.
    fn is_runtime_claim(&self, pid: u32) -> bool {
        if self.runtime_pid == Some(pid) {
            return true;
        }
        if self.runtime_pid.is_some_and(|p| self.proc_.alive(p)) {
            return false;
        }
        match (self.init_pid, self.proc_.ppid(pid)) {
            (Some(init), Some(parent)) => parent == init,
            // No /proc to ask (then there is no CPU figure either).
            _ => true,
        }
    }

    /// Changes each time an invocation's `runtimeDone` arrives.
    pub fn done_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.done_tx.subscribe()
    }

    pub fn is_done(&self, request_id: &str) -> bool {
        self.open
            .iter()
            .find(|i| i.request_id == request_id)
            .is_none_or(|i| i.done)
    }

    pub fn runtime_pid(&self) -> Option<u32> {
        self.runtime_pid
    }

    /// False once the runtime process announced by the hooks is gone (the
    /// sandbox is being reset, or the runtime crashed).
    pub fn runtime_alive(&self) -> bool {
        self.runtime_pid.is_none_or(|p| self.proc_.alive(p))
    }

    fn read_cpu(&self) -> Option<Reading> {
        self.proc_.read_tree(self.runtime_pid?)
    }

    fn stamp(
        &self,
        ty: &str,
        time_ms: f64,
        request_id: &str,
        fields: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("type".into(), json!(ty));
        o.insert("time".into(), json!(rfc3339_ms(time_ms)));
        o.insert("function".into(), json!(self.ident.function));
        o.insert("request_id".into(), json!(request_id));
        for (k, v) in [
            ("account", &self.ident.account),
            ("region", &self.ident.region),
            ("version", &self.ident.version),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        }
        o.extend(fields);
        o
    }

    fn push(&self, o: Map<String, Value>, essential: bool) {
        match serde_json::to_vec(&Value::Object(o)) {
            Ok(b) => {
                self.queue.push(b, essential);
            }
            Err(e) => tracing::error!(error = %e, "an event could not be serialised; dropped"),
        }
    }

    /// `INVOKE` from the Extensions API.
    pub fn on_invoke(&mut self, request_id: &str, deadline_ms: i64, now_ms: i64) {
        let cpu_start = self.cpu_rest.or_else(|| self.read_cpu());
        let cold = !self.seen_invoke;
        self.seen_invoke = true;
        self.open.push_back(Inv {
            request_id: request_id.to_string(),
            deadline_ms,
            invoked_ms: now_ms,
            cpu_start,
            cold,
            ..Inv::default()
        });
        while self.open.len() > MAX_OPEN {
            if let Some(old) = self.open.pop_front() {
                tracing::warn!(request_id = %old.request_id, "no report came for an old invocation; sending what is known");
                self.emit(old, now_ms, None);
            }
        }
        self.current = Some(request_id.to_string());
        self.recent.push_back((request_id.to_string(), now_ms));
        while self.recent.len() > MAX_RECENT {
            self.recent.pop_front();
        }
        // What the hooks saw during init belongs to the invocation that
        // caused the cold start; what raced ahead of this INVOKE, to it.
        for (t, mut fields, init) in std::mem::take(&mut self.held) {
            let ty = fields
                .remove("type")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if init {
                fields.insert("phase".into(), json!("init"));
            }
            let o = self.stamp(&ty, t, request_id, fields);
            self.push(o, false);
        }
        if let Some(pos) = self.early_samples.iter().position(|(r, _)| r == request_id) {
            let (_, sample) = self.early_samples.swap_remove(pos);
            if let Some(inv) = self.open.back_mut() {
                inv.sample = Some(sample);
            }
        }
        self.early_samples.clear();
    }

    /// Takes a CPU reading of the running invocation (near its deadline, so
    /// that a timeout that kills the runtime still has a figure).
    pub fn sample_cpu(&mut self, request_id: &str) {
        let Some(r) = self.read_cpu() else { return };
        if let Some(inv) = self
            .open
            .iter_mut()
            .find(|i| i.request_id == request_id && !i.done)
        {
            inv.cpu_last = Some(r);
        }
    }

    /// The invocation a hook message belongs to: the one that was current
    /// when the hook sent it, however late the message arrives. Among the
    /// latest [`MAX_RECENT`] invocations (nothing a message says about
    /// others is believed: the function may be compromised), the newer of
    /// - the one it names (the hooks name the invocation the runtime is
    ///   running; it can be newer than its `INVOKE` here, which the runtime
    ///   may get first), and
    /// - the last one invoked at or before the hook's own time `t` (epoch
    ///   ms, already checked for skew): a thread or a process the function
    ///   left running sends during the invocation of its time, and a process
    ///   the hook is loaded into names no invocation at all.
    ///
    /// Else the current one; none (hold it) before the first invocation, and
    /// between invocations for a message that names an id not known yet: it
    /// is faster than `INVOKE` (Lambda sends the next invocation only after
    /// the extension asked for it, so no other can be running then).
    fn route(&self, rid: Option<String>, t: Option<f64>) -> Option<String> {
        let named = rid
            .as_deref()
            .and_then(|r| self.recent.iter().position(|(k, _)| k == r));
        if rid.is_some() && named.is_none() && self.current.is_none() {
            return None;
        }
        let timed = t.and_then(|t| self.recent.iter().rposition(|(_, at)| (*at as f64) <= t));
        match named.max(timed) {
            Some(i) => self.recent.get(i).map(|(k, _)| k.clone()),
            None => self.current.clone(),
        }
    }

    /// The lines of one datagram from the hooks.
    pub fn on_lines(&mut self, lines: Vec<Result<Message, Reject>>, now_ms: i64) {
        for l in lines {
            match l {
                Err(r) => *self.stats.rejected.entry(r.as_str()).or_default() += 1,
                Ok(m) => {
                    self.stats.accepted += 1;
                    self.on_message(m, now_ms);
                }
            }
        }
    }

    fn on_message(&mut self, m: Message, now_ms: i64) {
        match m {
            Message::Hello { pid, runtime } => {
                if !self.is_runtime_claim(pid) {
                    self.stats.false_hellos += 1;
                    tracing::warn!(pid, runtime = %runtime, known = ?self.runtime_pid, "a process that is not the runtime said it was; ignored");
                    return;
                }
                if self.runtime_pid != Some(pid) {
                    tracing::info!(pid, runtime = %runtime, "the runtime's hook started");
                    self.runtime_pid = Some(pid);
                    self.cpu_rest = None;
                    // A runtime that announced itself late: its CPU counts from now.
                    let now = self.read_cpu();
                    if let Some(inv) = self
                        .open
                        .iter_mut()
                        .find(|i| !i.done && i.cpu_start.is_none())
                    {
                        inv.cpu_start = now;
                    }
                }
            }
            Message::HookDropped { dropped } => self.stats.hook_dropped += dropped,
            Message::Sample {
                request_id,
                event,
                event_bytes,
                trigger,
            } => {
                let sample = (event, event_bytes, trigger);
                match self.route(request_id.clone(), None) {
                    Some(rid) => {
                        if let Some(inv) = self.open.iter_mut().find(|i| i.request_id == rid) {
                            inv.sample = Some(sample);
                        }
                    }
                    None => {
                        if let Some(r) = request_id
                            && self.early_samples.len() < 8
                        {
                            self.early_samples.push((r, sample));
                        }
                    }
                }
            }
            Message::Event {
                ty,
                request_id,
                t,
                mut fields,
            } => {
                let now = now_ms as f64;
                let hook_t = t
                    .map(|s| s * 1000.0)
                    .filter(|t| (t - now).abs() < MAX_SKEW_MS);
                let t = hook_t.unwrap_or(now);
                match self.route(request_id, hook_t) {
                    Some(rid) => {
                        let o = self.stamp(ty, t, &rid, fields);
                        self.push(o, false);
                    }
                    None if self.held.len() < MAX_PRE_INVOKE => {
                        fields.insert("type".into(), json!(ty));
                        self.held.push((t, fields, !self.seen_invoke));
                    }
                    None => {
                        self.queue.counters.overflow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// One batch from the Telemetry API.
    pub fn on_telemetry(&mut self, items: Vec<Item>, bad: usize, now_ms: i64) {
        self.stats.telemetry_bad += bad as u64;
        for (time, rec) in items {
            match rec {
                Record::InitReport { duration_ms } => self.init_ms = duration_ms.or(self.init_ms),
                Record::Start { request_id } => {
                    if let Some(inv) = self.open.iter_mut().find(|i| i.request_id == request_id) {
                        inv.start_ms = parse_ms(&time);
                    }
                }
                Record::RuntimeDone {
                    request_id,
                    status,
                    duration_ms,
                    error_type,
                } => {
                    let end = self.read_cpu();
                    if let Some(inv) = self.open.iter_mut().find(|i| i.request_id == request_id) {
                        let end = end.or(inv.cpu_last);
                        inv.cpu_ms = match (inv.cpu_start, end) {
                            (Some(a), Some(b)) => Some(b.ms_since(&a)),
                            _ => None,
                        };
                        inv.done = true;
                        inv.done_time = Some(time);
                        inv.status = Some(status_of(&status).to_string());
                        inv.error_type = error_type;
                        inv.duration_ms = duration_ms;
                    }
                    self.cpu_rest = end;
                    if self.current.as_deref() == Some(request_id.as_str()) {
                        self.current = None;
                    }
                    self.done_tx.send_modify(|n| *n += 1);
                }
                Record::Report {
                    request_id,
                    status,
                    error_type,
                    duration_ms,
                    billed_ms,
                    memory_mb,
                    max_memory_mb,
                    init_ms,
                } => {
                    let Some(pos) = self.open.iter().position(|i| i.request_id == request_id)
                    else {
                        continue;
                    };
                    let Some(mut inv) = self.open.remove(pos) else {
                        continue;
                    };
                    if inv.status.is_none() {
                        inv.status = status.as_deref().map(|s| status_of(s).to_string());
                    }
                    inv.error_type = inv.error_type.or(error_type);
                    inv.duration_ms = duration_ms.or(inv.duration_ms);
                    if inv.done_time.is_none() {
                        inv.done_time = Some(time);
                    }
                    let report = json!({
                        "billed_ms": billed_ms, "memory_mb": memory_mb,
                        "max_memory_mb": max_memory_mb, "init_ms": init_ms,
                    });
                    self.emit(inv, now_ms, Some(report));
                }
                Record::Other => {}
            }
        }
    }

    /// Sends the `invocation` event of `inv`.
    fn emit(&mut self, inv: Inv, now_ms: i64, report: Option<Value>) {
        self.stats.invocations += 1;
        let time_ms = inv
            .done_time
            .as_deref()
            .and_then(parse_ms)
            .unwrap_or(now_ms) as f64;
        let duration = inv
            .duration_ms
            .unwrap_or_else(|| (now_ms - inv.start_ms.unwrap_or(inv.invoked_ms)).max(0) as f64);
        let status = inv.status.clone().unwrap_or_else(|| {
            if now_ms >= inv.deadline_ms {
                "timeout"
            } else {
                "crash"
            }
            .to_string()
        });
        let started = inv.start_ms.unwrap_or(inv.invoked_ms);
        let timeout_ms = (inv.deadline_ms - started).max(0);
        // Lambda's timeouts are whole seconds.
        let timeout_ms = if timeout_ms >= 1000 {
            (timeout_ms + 500) / 1000 * 1000
        } else {
            timeout_ms
        };
        let mut f = Map::new();
        f.insert("duration_ms".into(), json!(duration));
        f.insert("status".into(), json!(status));
        f.insert("timeout_ms".into(), json!(timeout_ms));
        if let Some(c) = inv.cpu_ms {
            f.insert("cpu_ms".into(), json!(c));
        }
        if let Some(e) = &inv.error_type {
            f.insert("error_type".into(), json!(e));
        }
        let mut init_ms = None;
        if let Some(Value::Object(r)) = report {
            for (k, v) in r {
                if k == "init_ms" {
                    init_ms = v.as_f64();
                } else if !v.is_null() {
                    f.insert(k, v);
                }
            }
        } else if let Some(m) = self.ident.memory_mb {
            f.insert("memory_mb".into(), json!(m));
        }
        if inv.cold {
            init_ms = init_ms.or(self.init_ms);
        }
        f.insert("init_ms".into(), json!(init_ms));
        if let Some((event, bytes, trigger)) = inv.sample {
            if !event.is_null() {
                f.insert("event".into(), event);
            }
            if let Some(b) = bytes {
                f.insert("event_bytes".into(), json!(b));
            }
            if let Some(t) = trigger {
                f.insert("trigger".into(), json!(t));
            }
        }
        if !inv.done {
            // No runtimeDone: the sandbox went away mid-invocation.
            f.insert("sensor_incomplete".into(), json!(true));
        }
        f.insert("sensor".into(), self.counters());
        let o = self.stamp("invocation", time_ms, &inv.request_id, f);
        self.push(o, true);
    }

    /// Finishes every open invocation (at `SHUTDOWN`).
    pub fn finish_all(&mut self, now_ms: i64) {
        while let Some(inv) = self.open.pop_front() {
            self.emit(inv, now_ms, None);
        }
    }

    /// Whether an invocation still waits for its report.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The sensor's own figures (in the stats line and on every invocation event).
    pub fn counters(&self) -> Value {
        let c = &self.queue.counters;
        let rejected: u64 = self.stats.rejected.values().sum();
        json!({
            "hook_messages": self.stats.accepted,
            "rejected_messages": rejected,
            "rejected_by_reason": self.stats.rejected,
            "hook_dropped": self.stats.hook_dropped,
            "false_hellos": self.stats.false_hellos,
            "buffer_dropped": c.overflow.load(Ordering::Relaxed),
            "ship_failed": c.failed.load(Ordering::Relaxed),
            "shipped": c.shipped.load(Ordering::Relaxed),
            "telemetry_bad": self.stats.telemetry_bad,
            "invocations": self.stats.invocations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::parse_line;

    fn state() -> (State, Arc<Queue>) {
        let q = Queue::new(100);
        let ident = Identity {
            function: "orders".into(),
            region: Some("eu-west-1".into()),
            account: Some("123456789012".into()),
            version: Some("$LATEST".into()),
            memory_mb: Some(128),
        };
        (State::new(ident, Proc::at("/nonexistent"), q.clone()), q)
    }

    fn drain(q: &Queue) -> Vec<Value> {
        q.take_all_for_tests()
            .into_iter()
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect()
    }

    fn item(ty: &str, t: &str, rec: Value) -> Item {
        let v = json!([{"time": t, "type": ty, "record": rec}]);
        crate::telemetry::parse_batch(v.to_string().as_bytes())
            .unwrap()
            .0
            .remove(0)
    }

    #[test]
    fn an_invocation_becomes_one_event_with_its_hook_events_stamped() {
        let (mut s, q) = state();
        let t0 = 1_700_000_000_000;
        // A lookup during init, before any invocation, and a forged identity.
        s.on_lines(
            vec![parse_line(
                br#"{"type":"dns","query":"init.example","function":"evil"}"#,
                100,
            )],
            t0,
        );
        s.on_invoke("r1", t0 + 3000, t0);
        s.on_telemetry(
            vec![item(
                "platform.start",
                "2023-11-14T22:13:20.000Z",
                json!({"requestId":"r1"}),
            )],
            0,
            t0,
        );
        s.on_lines(
            vec![
                parse_line(br#"{"type":"invoke","request_id":"r1","event":"{\"q\":1}","event_bytes":7,"trigger":"direct"}"#, 100),
                parse_line(br#"{"type":"process","exe":"/bin/sh","args":["sh","-c","id"],"request_id":"forged"}"#, 100),
                parse_line(b"nonsense", 100),
            ],
            t0 + 5,
        );
        s.on_telemetry(
            vec![item(
                "platform.runtimeDone",
                "2023-11-14T22:13:20.050Z",
                json!({"requestId":"r1","status":"success","metrics":{"durationMs":50.0}}),
            )],
            0,
            t0 + 50,
        );
        assert!(s.is_done("r1"));
        s.on_telemetry(vec![item("platform.report", "2023-11-14T22:13:20.060Z", json!({"requestId":"r1","status":"success","metrics":{"durationMs":50.5,"billedDurationMs":51,"memorySizeMB":128,"maxMemoryUsedMB":40,"initDurationMs":120.0}}))], 0, t0 + 60);
        let ev = drain(&q);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert_eq!(ev[0]["query"], "init.example");
        assert_eq!(ev[0]["function"], "orders");
        assert_eq!(ev[0]["request_id"], "r1");
        assert_eq!(ev[0]["phase"], "init");
        assert_eq!(ev[1]["type"], "process");
        assert_eq!(
            ev[1]["request_id"], "r1",
            "an unknown claimed id is replaced by the current one"
        );
        let inv = &ev[2];
        assert_eq!(inv["type"], "invocation");
        assert_eq!(inv["request_id"], "r1");
        assert_eq!(inv["duration_ms"], 50.5);
        assert_eq!(inv["billed_ms"], 51);
        assert_eq!(inv["max_memory_mb"], 40);
        assert_eq!(inv["init_ms"], 120.0);
        assert_eq!(inv["timeout_ms"], 3000);
        assert_eq!(inv["status"], "success");
        assert_eq!(inv["trigger"], "direct");
        assert_eq!(inv["event"], "{\"q\":1}");
        assert_eq!(inv["time"], "2023-11-14T22:13:20.050000Z");
        assert_eq!(inv["account"], "123456789012");
        assert_eq!(inv["sensor"]["rejected_by_reason"]["not_json"], 1);
    }

    #[test]
    fn a_hook_faster_than_invoke_is_held_for_it() {
        let (mut s, q) = state();
        s.on_invoke("r1", 10_000, 0);
        s.on_telemetry(
            vec![item(
                "platform.runtimeDone",
                "2023-11-14T22:13:20.050Z",
                json!({"requestId":"r1","status":"success"}),
            )],
            0,
            5,
        );
        s.on_lines(
            vec![
                parse_line(
                    br#"{"type":"invoke","request_id":"r2","event":"{}","trigger":"sqs"}"#,
                    100,
                ),
                parse_line(
                    br#"{"type":"dns","query":"q.example","request_id":"r2"}"#,
                    100,
                ),
            ],
            6,
        );
        s.on_invoke("r2", 10_000, 7);
        s.finish_all(8);
        let ev = drain(&q);
        let dns: Vec<&Value> = ev.iter().filter(|e| e["type"] == "dns").collect();
        assert_eq!(dns.len(), 1);
        assert_eq!(dns[0]["request_id"], "r2");
        assert!(dns[0].get("phase").is_none(), "not init: {}", dns[0]);
        let r2 = ev
            .iter()
            .find(|e| e["type"] == "invocation" && e["request_id"] == "r2")
            .unwrap();
        assert_eq!(r2["trigger"], "sqs");
    }

    fn done_and_reported(s: &mut State, rid: &str, now: i64) {
        s.on_telemetry(
            vec![item(
                "platform.runtimeDone",
                "2023-11-14T22:13:20.050Z",
                json!({"requestId": rid, "status": "success"}),
            )],
            0,
            now,
        );
        s.on_telemetry(
            vec![item(
                "platform.report",
                "2023-11-14T22:13:20.060Z",
                json!({"requestId": rid, "status": "success", "metrics": {"durationMs": 5.0}}),
            )],
            0,
            now,
        );
    }

    #[test]
    fn a_message_late_to_the_socket_belongs_to_the_invocation_it_was_sent_in() {
        let (mut s, q) = state();
        let t0: i64 = 1_700_000_000_000;
        let line = |ty: &str, extra: &str, t_ms: i64| {
            let l = format!(r#"{{"type":"{ty}",{extra}"t":{}}}"#, t_ms as f64 / 1000.0);
            parse_line(l.as_bytes(), 100)
        };
        s.on_invoke("r1", t0 + 3000, t0);
        done_and_reported(&mut s, "r1", t0 + 20);
        // r1 is closed and reported; its messages come in now: one that
        // names it, one that names nothing but was sent while it ran.
        s.on_lines(
            vec![
                line(
                    "dns",
                    r#""query":"late.example","request_id":"r1","#,
                    t0 + 10,
                ),
                line("file", r#""path":"/tmp/late","op":"write","#, t0 + 12),
            ],
            t0 + 40,
        );
        s.on_invoke("r2", t0 + 3100, t0 + 100);
        s.on_lines(
            vec![
                // Late, after the next invocation started.
                line(
                    "dns",
                    r#""query":"later.example","request_id":"r1","#,
                    t0 + 15,
                ),
                line("file", r#""path":"/tmp/later","op":"write","#, t0 + 16),
                // A name the extension never saw is not believed.
                line(
                    "dns",
                    r#""query":"forged.example","request_id":"r0","#,
                    t0 + 105,
                ),
                // Nor an old name for what was sent in a later invocation.
                line(
                    "dns",
                    r#""query":"stale-name.example","request_id":"r1","#,
                    t0 + 105,
                ),
                line("dns", r#""query":"now.example","#, t0 + 101),
            ],
            t0 + 110,
        );
        // Ids older than the latest MAX_RECENT are forgotten.
        for i in 3..(MAX_RECENT as i64 + 3) {
            s.on_invoke(&format!("r{i}"), t0 + 100_000, t0 + 100 * i);
        }
        s.on_lines(
            vec![line(
                "dns",
                r#""query":"stale.example","request_id":"r1","#,
                t0 + 15,
            )],
            t0 + 100_000,
        );
        let ev = drain(&q);
        let rid_of = |q: &str| {
            let v: Vec<&Value> = ev
                .iter()
                .filter(|e| e["query"] == q || e["path"] == q)
                .collect();
            assert_eq!(v.len(), 1, "{q}: {ev:?}");
            v[0]["request_id"].as_str().unwrap().to_string()
        };
        assert_eq!(rid_of("late.example"), "r1");
        assert_eq!(rid_of("/tmp/late"), "r1");
        assert_eq!(rid_of("later.example"), "r1");
        assert_eq!(rid_of("/tmp/later"), "r1");
        assert_eq!(rid_of("forged.example"), "r2");
        assert_eq!(rid_of("stale-name.example"), "r2");
        assert_eq!(rid_of("now.example"), "r2");
        let last = format!("r{}", MAX_RECENT + 2);
        assert_eq!(rid_of("stale.example"), last);
    }

    /// A `/proc` with the given (pid, parent, state) processes.
    fn fake_proc(procs: &[(u32, u32, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (pid, ppid, st) in procs {
            let p = d.path().join(pid.to_string());
            std::fs::create_dir_all(&p).unwrap();
            let stat = format!("{pid} (python3) {st} {ppid} 0 0 0 0 0 0 0 0 0 7 3 0 0 20 0 1 0");
            std::fs::write(p.join("stat"), stat).unwrap();
        }
        d
    }

    fn hello(s: &mut State, pid: u32) {
        let line = format!(r#"{{"type":"hello","pid":{pid},"runtime":"python3.12"}}"#);
        s.on_lines(vec![parse_line(line.as_bytes(), 100)], 0);
    }

    #[test]
    fn only_the_runtime_can_say_it_is_the_runtime() {
        // 1 is the sandbox's init, 200 the runtime, 300 a process the
        // function started, 400 another child of init (an extension).
        let d = fake_proc(&[(200, 1, "S"), (300, 200, "S"), (400, 1, "S")]);
        let q = Queue::new(100);
        let mut s = State::new(Identity::default(), Proc::at(d.path()), q).with_init_pid(1);
        hello(&mut s, 300);
        assert_eq!(s.runtime_pid(), None, "a child of the runtime is not it");
        hello(&mut s, 200);
        assert_eq!(s.runtime_pid(), Some(200));
        hello(&mut s, 300);
        hello(&mut s, 400);
        assert_eq!(
            s.runtime_pid(),
            Some(200),
            "a live runtime is never replaced"
        );
        assert_eq!(s.counters()["false_hellos"], 3);
        // The runtime dies (a crash, a reset): the next child of init that
        // starts the hook is the runtime.
        std::fs::write(
            d.path().join("200/stat"),
            "200 (python3) Z 1 0 0 0 0 0 0 0 0 0 7 3 0 0 20 0 1 0",
        )
        .unwrap();
        hello(&mut s, 300);
        assert_eq!(s.runtime_pid(), Some(200));
        hello(&mut s, 400);
        assert_eq!(s.runtime_pid(), Some(400));
    }

    #[test]
    fn a_sandbox_gone_mid_invocation_still_reports_it() {
        let (mut s, q) = state();
        s.on_invoke("r9", 2_000, 0);
        s.finish_all(2_100);
        let ev = drain(&q);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0]["status"], "timeout");
        assert_eq!(ev[0]["sensor_incomplete"], true);
        assert_eq!(ev[0]["memory_mb"], 128);
        assert_eq!(status_of("failure"), "crash");
    }
}
