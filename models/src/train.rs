//! Training: fold a window of events into per-function profiles, then fit
//! the numeric models.

use std::collections::{BTreeMap, HashMap};

use arrow::array::RecordBatch;

use crate::acc::{ReqTable, Status, fold_invocation, touch};
use crate::error::Result;
use crate::injection;
use crate::model::{FunctionProfile, MODEL_FORMAT, Model};
use crate::names;
use crate::numeric::{Measures, NumericModel};
use crate::rows::{Rows, command_args, i32_at, i64_at};
use crate::shell;

/// At most this many invocations per function feed the numeric fit.
const FIT_SAMPLE: usize = 40_000;

/// Builds a [`Model`] from batches of `events` (columns [`crate::rows::COLUMNS`]).
#[derive(Default)]
pub struct Trainer {
    names: HashMap<String, u32>,
    profiles: Vec<FunctionProfile>,
    config_time: Vec<i64>,
    reqs: ReqTable,
    events: u64,
    trail: crate::trail::Learner,
    /// The batch added last, its lines being parsed.
    pending: Option<shell::PendingLines>,
    hosts: HostMemo,
    /// A key being put together (`shape|port`, `service:action`).
    key: String,
}

fn bump<K: Ord>(m: &mut BTreeMap<K, u64>, k: K) {
    *m.entry(k).or_insert(0) += 1;
}

/// [`bump`] for a borrowed key: a copy is made only for a new key.
fn bump_str(m: &mut BTreeMap<String, u64>, k: &str) {
    match m.get_mut(k) {
        Some(n) => *n += 1,
        None => {
            m.insert(k.to_owned(), 1);
        }
    }
}

/// Distinct host names the trainer keeps the [`HostFacts`] of.
const HOST_MEMO_NAMES: usize = 1 << 16;

/// What training learns from a host name: its shape, its site, whether it
/// looks like tunnelled data. Pure functions of the name.
struct HostFacts {
    shape: String,
    site: String,
    tunnel_like: bool,
}

/// The [`HostFacts`] of names seen lately: a fleet's functions look up and
/// connect to the same few thousand names millions of times, and working
/// out a name's shape is most of the cost of folding its event.
#[derive(Default)]
struct HostMemo(foldhash::HashMap<Box<str>, HostFacts>);

impl HostMemo {
    fn get(&mut self, host: &str) -> &HostFacts {
        if !self.0.contains_key(host) {
            if self.0.len() >= HOST_MEMO_NAMES {
                self.0.clear();
            }
            let facts = HostFacts {
                shape: names::dns_shape(host),
                site: names::site(host),
                tunnel_like: names::tunnel_like(host),
            };
            self.0.insert(host.into(), facts);
        }
        &self.0[host]
    }
}

impl Trainer {
    pub fn new() -> Trainer {
        Trainer::default()
    }

    /// Events folded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    fn func(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.names.get(name) {
            return i;
        }
        let i = self.profiles.len() as u32;
        self.names.insert(name.to_string(), i);
        self.profiles.push(FunctionProfile::default());
        self.config_time.push(i64::MIN);
        i
    }

    /// Folds one batch. Its shell command lines are parsed in the
    /// background while the batch before it is folded; [`Trainer::finish`]
    /// folds the last one.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        // Read here, so that a batch that cannot be read is this call's error.
        let rows = Rows::new(batch)?;
        self.events += rows.len as u64;
        let next = shell::PendingLines::spawn(batch);
        if let Some(before) = self.pending.replace(next) {
            self.fold(before);
        }
        Ok(())
    }

    /// The row pass over a batch whose lines were parsed in the background.
    fn fold(&mut self, pending: shell::PendingLines) {
        let (batch, mut lines) = pending.wait();
        // It was read once already, in `add_batch`.
        let Ok(rows) = Rows::new(&batch) else { return };
        for i in 0..rows.len {
            self.add_row(&rows, i, &mut lines);
        }
    }

    fn add_row(&mut self, rows: &Rows<'_>, i: usize, lines: &mut shell::BatchLines) {
        let (Some(kind), Some(function)) = (rows.kind.get(i), rows.function.get(i)) else {
            return;
        };
        let f = self.func(function);
        let t = rows.time.value(i);
        if kind == "function_config" {
            let p = &mut self.profiles[f as usize];
            if let Some(v) = rows.version.get(i) {
                p.versions.insert(v.to_string());
            }
            if let Some(c) = rows.code_sha256.get(i) {
                p.code_sha256.insert(c.to_string());
            }
            crate::trail::Learner::config(p, rows, i, t);
            if t >= self.config_time[f as usize] {
                self.config_time[f as usize] = t;
                let perms = rows.permissions.get(i);
                if !perms.is_empty() {
                    p.permissions = perms.iter().map(|s| s.to_string()).collect();
                }
            }
            return;
        }
        let Some(request_id) = rows.request_id.get(i) else {
            // A CloudTrail call belongs to the function, not an invocation.
            if kind == "api_call" {
                self.trail
                    .call(&mut self.profiles[f as usize], f, rows, i, t);
            }
            return;
        };
        let slot = self.reqs.slot(f, request_id);
        let p = &mut self.profiles[f as usize];
        let Some(acc) = self.reqs.get_mut(slot) else {
            return;
        };
        match kind {
            "invocation" => {
                fold_invocation(acc, rows, i, t);
                if let Some(v) = rows.version.get(i)
                    && !p.versions.contains(v)
                {
                    p.versions.insert(v.to_string());
                }
                if let Some(ev) = rows.event.get(i) {
                    p.event_samples += 1;
                    for finding in injection::scan_event(ev) {
                        bump(
                            &mut p.injection_paths,
                            format!("{}|{}", finding.class.as_str(), finding.path),
                        );
                    }
                }
            }
            "dns" => {
                touch(acc, t);
                acc.dns += 1;
                if let Some(q) = rows.query.get(i) {
                    let h = self.hosts.get(q);
                    bump_str(&mut p.dns_names, &h.shape);
                    bump_str(&mut p.dns_sites, &h.site);
                    if h.tunnel_like {
                        p.dns_tunnel_like += 1;
                    }
                }
                if rows.qtype.get(i) == Some("TXT") {
                    acc.txt += 1;
                }
                for a in rows.answers.get(i) {
                    if names::is_ip(a) {
                        p.resolved_prefixes.insert(names::ip_prefix(a));
                    }
                }
            }
            "process" => {
                touch(acc, t);
                acc.proc += 1;
                if let Some(exe) = rows.exe.get(i) {
                    let shape = names::exe_shape(exe);
                    let args = command_args(rows, i);
                    bump(
                        &mut p.arg_shapes,
                        format!("{shape} {}", names::args_shape(&args)),
                    );
                    bump(&mut p.exes, shape);
                    if let Some(script) =
                        shell::script_of(exe, &rows.args.get(i), rows.cmdline.get(i))
                    {
                        let parsed = lines.take(i).unwrap_or_else(|| shell::parse(&script));
                        p.shell.get_or_insert_with(Default::default).learn(&parsed);
                    }
                }
            }
            "network" => {
                touch(acc, t);
                acc.net += 1;
                let out = i64_at(rows.bytes_out, i).unwrap_or(0).max(0) as u64;
                acc.bytes_out += out;
                acc.bytes_in += i64_at(rows.bytes_in, i).unwrap_or(0).max(0) as u64;
                p.max_bytes_out = p.max_bytes_out.max(out);
                let port = i32_at(rows.remote_port, i).unwrap_or(0);
                bump(&mut p.ports, port);
                match rows
                    .remote_host
                    .get(i)
                    .filter(|h| !h.is_empty() && !names::is_ip(h))
                {
                    Some(host) => {
                        use std::fmt::Write as _;
                        let h = self.hosts.get(host);
                        let key = &mut self.key;
                        key.clear();
                        let _ = write!(key, "{}|{port}", h.shape);
                        bump_str(&mut p.peers, key);
                        key.clear();
                        let _ = write!(key, "{}|{port}", h.site);
                        bump_str(&mut p.peer_sites, key);
                    }
                    None => {
                        if let Some(ip) = rows.remote_ip.get(i) {
                            p.raw_prefixes.insert(names::ip_prefix(ip));
                        }
                    }
                }
            }
            "file" => {
                touch(acc, t);
                acc.file += 1;
                if let Some(path) = rows.path.get(i) {
                    if names::sensitive_path(path).is_some() {
                        p.sensitive_paths.insert(path.to_string());
                    }
                    let shape = names::path_shape(path);
                    let op = op_class(rows.op.get(i));
                    bump(
                        &mut p.file_dirs,
                        format!("{}|{op}", names::dir_of(&shape, 3)),
                    );
                }
            }
            "api_call" => {
                touch(acc, t);
                acc.api += 1;
                if let (Some(s), Some(a)) = (rows.service.get(i), rows.action.get(i)) {
                    let key = &mut self.key;
                    key.clear();
                    key.push_str(s);
                    key.push(':');
                    key.push_str(a);
                    bump_str(&mut p.api_actions, key);
                    if !p.api_services.contains(s) {
                        p.api_services.insert(s.to_string());
                    }
                }
                if rows.error_code.get(i).is_some_and(is_denied) {
                    acc.denied += 1;
                }
                crate::trail::Learner::sensor_resource(p, rows, i);
            }
            _ => {}
        }
    }

    /// Fits the numeric models and returns the model.
    pub fn finish(mut self, name: &str, version: u32, from: &str, to: &str, now: &str) -> Model {
        if let Some(last) = self.pending.take() {
            self.fold(last);
        }
        std::mem::take(&mut self.trail).finish(&mut self.profiles);
        // The numeric sample: every normal invocation, keyed by a hash of its
        // request id, so the model does not depend on the order batches came in.
        let mut keyed: Vec<Vec<(u64, Measures)>> = vec![Vec::new(); self.profiles.len()];
        for (i, acc) in self.reqs.reqs.iter().enumerate() {
            let f = acc.func as usize;
            let Some(p) = self.profiles.get_mut(f) else {
                continue;
            };
            p.dns_max_per_invocation = p.dns_max_per_invocation.max(acc.dns as u64);
            p.txt_max_per_invocation = p.txt_max_per_invocation.max(acc.txt as u64);
            p.denied_max_per_invocation = p.denied_max_per_invocation.max(acc.denied as u64);
            if acc.inv_us.is_none() {
                continue;
            }
            p.invocations += 1;
            match acc.status {
                Status::Error | Status::Crash => p.errors += 1,
                _ => {}
            }
            if acc.cold {
                p.cold_starts += 1;
            }
            if acc.is_timeout() {
                p.timeouts += 1;
                if acc.idle().is_some() {
                    p.idle_timeouts += 1;
                }
                continue; // timeouts are judged by their own rule
            }
            let id = self.reqs.id(i as u32);
            keyed[f].push((fnv1a(id.as_bytes()), acc.measures()));
        }
        let mut samples: Vec<Vec<Measures>> = Vec::with_capacity(keyed.len());
        for mut k in keyed {
            if k.len() > FIT_SAMPLE {
                k.select_nth_unstable_by_key(FIT_SAMPLE, |(h, _)| *h);
                k.truncate(FIT_SAMPLE);
            }
            k.sort_unstable_by_key(|(h, _)| *h);
            samples.push(k.into_iter().map(|(_, m)| m).collect());
        }
        for (p, s) in self.profiles.iter_mut().zip(samples.iter()) {
            p.numeric = NumericModel::fit(s);
            // Present even when empty: this model knows the function's
            // command lines (none, if it runs no shell).
            p.shell.get_or_insert_with(Default::default);
        }
        let mut functions = BTreeMap::new();
        let mut fleet_sites: BTreeMap<String, u32> = BTreeMap::new();
        let mut names: Vec<(&String, &u32)> = self.names.iter().collect();
        names.sort();
        for (n, &i) in names {
            let Some(p) = self.profiles.get(i as usize) else {
                continue;
            };
            for site in p.dns_sites.keys() {
                *fleet_sites.entry(site.clone()).or_insert(0) += 1;
            }
            functions.insert(n.clone(), p.clone());
        }
        Model {
            format: MODEL_FORMAT,
            name: name.to_string(),
            version,
            trained_at: now.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            events: self.events,
            functions,
            fleet_sites,
        }
    }
}

/// `read` for reads, `write` for anything that changes the file system.
pub fn op_class(op: Option<&str>) -> &'static str {
    match op {
        Some("read") | None => "read",
        Some("exec") => "exec",
        _ => "write",
    }
}

/// Error codes that mean the role was not allowed.
pub fn is_denied(code: &str) -> bool {
    code.contains("AccessDenied") || code.contains("Unauthorized") || code == "Forbidden"
}

/// FNV-1a: a hash that is the same on every run and machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_host_facts_are_the_facts() {
        let hosts = [
            "dynamodb.us-east-1.amazonaws.com",
            "API.Stripe.com.",
            "aGVsbG8gd29ybGQgdGhpcyBpcyBlbmNvZGVkIGRhdGEgZm9y.t.example.net",
            "",
            "acme-assets-1a2b3c4d5e6f.s3.amazonaws.com",
        ];
        let check = |memo: &mut HostMemo, h: &str| {
            let f = memo.get(h);
            assert_eq!(f.shape, names::dns_shape(h), "{h:?}");
            assert_eq!(f.site, names::site(h), "{h:?}");
            assert_eq!(f.tunnel_like, names::tunnel_like(h), "{h:?}");
        };
        let mut memo = HostMemo::default();
        for _ in 0..2 {
            for h in hosts {
                check(&mut memo, h);
            }
        }
        // Past its size the memo starts afresh and still answers right.
        for i in 0..HOST_MEMO_NAMES + 10 {
            memo.get(&format!("h{i}.example.com"));
        }
        assert!(memo.0.len() <= HOST_MEMO_NAMES);
        for h in hosts {
            check(&mut memo, h);
        }
    }

    #[test]
    fn bump_str_counts_like_bump() {
        let mut a: BTreeMap<String, u64> = BTreeMap::new();
        let mut b: BTreeMap<String, u64> = BTreeMap::new();
        for k in ["x", "y", "x", "", "x"] {
            bump(&mut a, k.to_string());
            bump_str(&mut b, k);
        }
        assert_eq!(a, b);
        assert_eq!(b.get("x"), Some(&3));
    }
}
