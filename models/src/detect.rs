//! Detection: score a window of events against a [`Model`] and produce
//! alerts, at most one per (request, kind).
//!
//! Each event is compared with its function's profile as it streams by;
//! what needs the whole invocation (numbers, timeouts, lookup volume, denied
//! bursts) or the whole window (how widespread a new thing is after a
//! deploy, timeout waves across functions) is settled in [`Detector::finish`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;

use arrow::array::RecordBatch;
use serde_json::{Value, json};

use crate::acc::{ReqTable, fold_invocation, touch};
use crate::alert::{Alert, Kind, Severity, alert_id, rfc3339_us};
use crate::error::Result;
use crate::injection::{self, Strength};
use crate::model::{FunctionProfile, Model};
use crate::names;
use crate::rows::{Rows, command_args, f64_at, i32_at, i64_at};
use crate::shell::{self, Parsed, ShellProfile};
use crate::train::{is_denied, op_class};

/// A finding before the window-wide adjustments.
struct Cand {
    req: u32,
    kind: Kind,
    severity: Severity,
    within: f64,
    time_us: i64,
    summary: String,
    evidence: Value,
    /// The new thing, for "widespread after a deploy" downgrades; `None`
    /// for findings that stay whatever the deploy history.
    novelty: Option<String>,
}

/// A raw-IP connection waiting for the window's lookups to name it.
struct Deferred {
    req: u32,
    time_us: i64,
    ip: String,
    port: i32,
    protocol: String,
    bytes_out: i64,
}

/// Per function, in the window.
#[derive(Default)]
struct FnWindow {
    deploy_us: Option<i64>,
    deploy_what: String,
    permissions: Option<(i64, Vec<String>)>,
    used: BTreeSet<String>,
    /// Addresses its lookups answered -> the name looked up first (an index
    /// into [`Detector::looked_up`]), for at most [`IP_NAMES`] addresses.
    /// Built from `answers` only when a connection has no name of its own.
    ip_names: HashMap<std::net::IpAddr, u32, foldhash::fast::RandomState>,
    /// Answers not in `ip_names` yet, in the order of the lookups.
    answers: Vec<Answer>,
}

/// Addresses a function's lookups answered that it remembers, in a window.
const IP_NAMES: usize = 100_000;

/// One address a lookup answered.
struct Answer {
    ip: std::net::IpAddr,
    /// The name looked up: an index into [`Detector::looked_up`].
    name: u32,
    /// The first address of its lookup.
    first: bool,
}

impl FnWindow {
    /// Moves the pending answers into `ip_names`: each address keeps the
    /// first name it answered, and a lookup's answers are taken only while
    /// fewer than [`IP_NAMES`] addresses are known.
    fn index_answers(&mut self) {
        let mut open = true;
        for a in self.answers.drain(..) {
            if a.first {
                open = self.ip_names.len() < IP_NAMES;
            }
            if open {
                self.ip_names.entry(a.ip).or_insert(a.name);
            }
        }
    }
}

/// Scores batches of `events` against a model.
pub struct Detector<'m> {
    model: &'m Model,
    names: HashMap<String, u32, foldhash::fast::RandomState>,
    fn_names: Vec<String>,
    /// Names looked up with an answer in the window, each once (what
    /// [`Answer::name`] and `ip_names` point to).
    looked_up: Vec<std::sync::Arc<str>>,
    looked_up_ids: HashMap<std::sync::Arc<str>, u32, foldhash::fast::RandomState>,
    profiles: Vec<Option<&'m FunctionProfile>>,
    window: Vec<FnWindow>,
    /// CloudTrail calls and configurations, per function.
    trail: Vec<crate::trail::Window>,
    reqs: ReqTable,
    cands: Vec<Cand>,
    novelties: HashMap<(u32, String), (HashSet<u32>, i64)>,
    deferred: Vec<Deferred>,
    events: u64,
    /// Hashes of (function, what) already judged normal: repeated hosts,
    /// paths and actions skip normalisation and map lookups.
    known: HashSet<u64, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
    /// The batch added last, its lines being parsed.
    pending: Option<shell::PendingLines>,
}

/// What detection found, with counts for the summary.
pub struct Detection {
    pub alerts: Vec<Alert>,
    pub invocations: u64,
    pub events: u64,
    pub unknown_functions: Vec<String>,
}

const EMPTY: &FunctionProfile = &FunctionProfile {
    invocations: 0,
    timeouts: 0,
    idle_timeouts: 0,
    errors: 0,
    cold_starts: 0,
    versions: BTreeSet::new(),
    code_sha256: BTreeSet::new(),
    permissions: Vec::new(),
    role_arn: None,
    dns_names: BTreeMap::new(),
    dns_sites: BTreeMap::new(),
    dns_max_per_invocation: 0,
    txt_max_per_invocation: 0,
    dns_tunnel_like: 0,
    resolved_prefixes: BTreeSet::new(),
    exes: BTreeMap::new(),
    arg_shapes: BTreeMap::new(),
    peers: BTreeMap::new(),
    peer_sites: BTreeMap::new(),
    raw_prefixes: BTreeSet::new(),
    ports: BTreeMap::new(),
    max_bytes_out: 0,
    file_dirs: BTreeMap::new(),
    sensitive_paths: BTreeSet::new(),
    api_actions: BTreeMap::new(),
    api_services: BTreeSet::new(),
    denied_max_per_invocation: 0,
    injection_paths: BTreeMap::new(),
    event_samples: 0,
    numeric: None,
    trail: crate::trail::TrailProfile::EMPTY,
    shell: None,
};

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

pub(crate) fn top_keys<V>(m: &BTreeMap<String, V>, n: usize) -> Vec<String>
where
    V: Copy + Ord,
{
    let mut v: Vec<(&String, V)> = m.iter().map(|(k, v)| (k, *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(k, _)| k.clone()).collect()
}

impl<'m> Detector<'m> {
    pub fn new(model: &'m Model) -> Detector<'m> {
        Detector {
            model,
            names: HashMap::default(),
            fn_names: Vec::new(),
            looked_up: Vec::new(),
            looked_up_ids: HashMap::default(),
            profiles: Vec::new(),
            window: Vec::new(),
            trail: Vec::new(),
            reqs: ReqTable::default(),
            cands: Vec::new(),
            novelties: HashMap::new(),
            deferred: Vec::new(),
            events: 0,
            known: HashSet::default(),
            hasher: foldhash::fast::RandomState::default(),
            pending: None,
        }
    }

    /// Events taken so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    fn func(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.names.get(name) {
            return i;
        }
        let i = self.fn_names.len() as u32;
        self.names.insert(name.to_string(), i);
        self.fn_names.push(name.to_string());
        self.profiles.push(self.model.functions.get(name));
        self.window.push(FnWindow::default());
        self.trail.push(crate::trail::Window::default());
        i
    }

    /// The name function `f` looked up that answered `ip`, first in the window.
    fn name_of(&mut self, f: u32, ip: &str) -> Option<std::sync::Arc<str>> {
        let ip = names::parse_ip(ip)?;
        let w = &mut self.window[f as usize];
        if !w.answers.is_empty() {
            w.index_answers();
        }
        let id = *w.ip_names.get(&ip)?;
        self.looked_up.get(id as usize).cloned()
    }

    fn cand(&mut self, c: Cand) {
        if let Some(key) = &c.novelty {
            let f = self
                .reqs
                .reqs
                .get(c.req as usize)
                .map(|r| r.func)
                .unwrap_or(0);
            let e = self
                .novelties
                .entry((f, format!("{}|{key}", c.kind)))
                .or_insert_with(|| (HashSet::new(), c.time_us));
            e.0.insert(c.req);
            e.1 = e.1.min(c.time_us);
        }
        self.cands.push(c);
    }

    /// Scores one batch. Its shell command lines are parsed in the
    /// background while the batch before it is scored; [`Detector::finish`]
    /// scores the last one.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        // Read here, so that a batch that cannot be read is this call's error.
        let rows = Rows::new(batch)?;
        self.events += rows.len as u64;
        let next = shell::PendingLines::spawn(batch);
        if let Some(before) = self.pending.replace(next) {
            self.score(before);
        }
        Ok(())
    }

    /// The row pass over a batch whose lines were parsed in the background.
    fn score(&mut self, pending: shell::PendingLines) {
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
        let p: &'m FunctionProfile = self.profiles[f as usize].unwrap_or(EMPTY);
        if kind == "function_config" {
            let w = &mut self.window[f as usize];
            let new_code = rows
                .code_sha256
                .get(i)
                .is_some_and(|c| !p.code_sha256.contains(c));
            let new_version = rows.version.get(i).is_some_and(|v| !p.versions.contains(v));
            if (new_code || new_version) && w.deploy_us.is_none_or(|d| t < d) {
                w.deploy_us = Some(t);
                w.deploy_what = match rows.version.get(i) {
                    Some(v) => format!("version {v}"),
                    None => "new code".to_string(),
                };
            }
            let perms = rows.permissions.get(i);
            if !perms.is_empty() && w.permissions.as_ref().is_none_or(|(pt, _)| t >= *pt) {
                w.permissions = Some((t, perms.iter().map(|s| s.to_string()).collect()));
            }
            self.trail[f as usize].config(rows, i, t);
            return;
        }
        let Some(request_id) = rows.request_id.get(i) else {
            // A CloudTrail call belongs to the function, not an invocation.
            if kind == "api_call" {
                if let (Some(s), Some(a)) = (rows.service.get(i), rows.action.get(i))
                    && !rows.error_code.get(i).is_some_and(is_denied)
                {
                    self.window[f as usize].used.insert(format!("{s}:{a}"));
                }
                self.trail[f as usize].call(rows, i, t);
            }
            return;
        };
        let req = self.reqs.slot(f, request_id);
        match kind {
            "invocation" => self.invocation(rows, i, f, req, t, p),
            "dns" => self.dns(rows, i, f, req, t, p),
            "process" => self.process(rows, i, req, t, p, lines.take(i)),
            "network" => self.network(rows, i, f, req, t, p),
            "file" => self.file(rows, i, req, t, p),
            "api_call" => self.api(rows, i, f, req, t, p),
            _ => {}
        }
    }

    fn invocation(
        &mut self,
        rows: &Rows<'_>,
        i: usize,
        f: u32,
        req: u32,
        t: i64,
        p: &FunctionProfile,
    ) {
        if let Some(acc) = self.reqs.get_mut(req) {
            fold_invocation(acc, rows, i, t);
        }
        if let Some(v) = rows.version.get(i)
            && !p.versions.is_empty()
            && !p.versions.contains(v)
        {
            let w = &mut self.window[f as usize];
            if w.deploy_us.is_none_or(|d| t < d) {
                w.deploy_us =
                    Some(t - (f64_at(rows.duration_ms, i).unwrap_or(0.0) * 1000.0) as i64);
                w.deploy_what = format!("version {v}");
            }
        }
        let Some(ev) = rows.event.get(i) else { return };
        let findings = injection::scan_event(ev);
        let Some(best) = findings.iter().max_by(|a, b| {
            let na = self.injection_normal(p, a.class.as_str(), &a.path);
            let nb = self.injection_normal(p, b.class.as_str(), &b.path);
            (!na, a.strength).cmp(&(!nb, b.strength))
        }) else {
            return;
        };
        if self.injection_normal(p, best.class.as_str(), &best.path) {
            // This field carries such text for this function (SQL for a query
            // API, templates for a preview service): not news.
            return;
        }
        let (severity, within, why) = if best.strength == Strength::Strong {
            (
                Severity::High,
                0.8,
                "never seen in this function's events".to_string(),
            )
        } else {
            (
                Severity::Low,
                0.5,
                "a weak match, never seen in this function's events".to_string(),
            )
        };
        let field = if best.path.is_empty() {
            "the event".to_string()
        } else {
            format!("field `{}`", best.path)
        };
        let summary = format!(
            "{} was invoked with a {} injection payload in {field}: {why}",
            self.fn_names[f as usize],
            best.class.label(),
        );
        let evidence = json!({
            "class": best.class.as_str(),
            "strength": if best.strength == Strength::Strong { "strong" } else { "weak" },
            "field": best.path,
            "fingerprint": best.fingerprint,
            "excerpt": best.excerpt,
            "other_findings": findings.len() - 1,
            "baseline": {
                "event_samples": p.event_samples,
                "same_class_in_field": p.injection_paths
                    .get(&format!("{}|{}", best.class.as_str(), best.path)).copied().unwrap_or(0),
            }
        });
        self.cand(Cand {
            req,
            kind: Kind::EventInjection,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty: None,
        });
    }

    fn injection_normal(&self, p: &FunctionProfile, class: &str, path: &str) -> bool {
        let n = p
            .injection_paths
            .get(&format!("{class}|{path}"))
            .copied()
            .unwrap_or(0);
        n >= 3 && (n as f64) >= 0.002 * p.event_samples as f64
    }

    fn dns(&mut self, rows: &Rows<'_>, i: usize, f: u32, req: u32, t: i64, p: &FunctionProfile) {
        let Some(q) = rows.query.get(i) else { return };
        if let Some(acc) = self.reqs.get_mut(req) {
            touch(acc, t);
            acc.dns += 1;
            if rows.qtype.get(i) == Some("TXT") {
                acc.txt += 1;
            }
        }
        let w = &mut self.window[f as usize];
        let mut id = None;
        let mut first = true;
        for a in rows.answers.iter(i) {
            let Some(ip) = names::parse_ip(a) else {
                continue;
            };
            let name = *id.get_or_insert_with(|| {
                if let Some(&id) = self.looked_up_ids.get(q) {
                    return id;
                }
                let name: std::sync::Arc<str> = q.into();
                let id = self.looked_up.len() as u32;
                self.looked_up.push(name.clone());
                self.looked_up_ids.insert(name, id);
                id
            });
            w.answers.push(Answer { ip, name, first });
            first = false;
        }
        if w.answers.len() >= 4 * IP_NAMES {
            w.index_answers();
        }
        let memo = self.hasher.hash_one((f, 1u8, q));
        if self.known.contains(&memo) {
            return;
        }
        let shape = names::dns_shape(q);
        if p.dns_names.contains_key(&shape) {
            self.known.insert(memo);
            return;
        }
        let site = names::site(q);
        let tunnel = names::tunnel_like(q);
        let site_known = p.dns_sites.contains_key(&site);
        let open = !tunnel && !site_known && open_ended(&p.dns_sites);
        let fleet = self.model.fleet_users(&site);
        let fname = &self.fn_names[f as usize];
        let (label, entropy) = names::longest_label(q);
        let (severity, within, why, novelty) = if tunnel && !site_known {
            (
                Severity::High,
                0.9,
                format!(
                    "a {}-character label of entropy {entropy:.1} bits under {site}, which it never resolves: tunnelling-like",
                    label.len()
                ),
                None,
            )
        } else if tunnel {
            (
                Severity::Low,
                0.5,
                format!("a long random-looking label under {site}, a site it resolves"),
                Some(site.clone()),
            )
        } else if open {
            (
                Severity::Low,
                0.3,
                format!(
                    "{site} is new, but this function meets new sites all the time ({} seen only once or twice)",
                    p.dns_sites.values().filter(|&&n| n <= 2).count()
                ),
                Some(site.clone()),
            )
        } else if site_known {
            // A new name of a site it resolves (another endpoint of its
            // cloud provider, a new CDN edge): not news on its own.
            return;
        } else if fleet > 0 {
            (
                Severity::Medium,
                0.5,
                format!(
                    "{site} is new for this function (it resolves {}), though {} in the fleet resolve it",
                    plural(p.dns_sites.len(), "site", "sites"),
                    plural(fleet as usize, "other function", "other functions")
                ),
                Some(site.clone()),
            )
        } else {
            (
                Severity::High,
                0.6,
                format!(
                    "{site} was never resolved by this function (it resolves {}) nor by any function in the fleet",
                    plural(p.dns_sites.len(), "site", "sites")
                ),
                Some(site.clone()),
            )
        };
        let summary = format!("{fname} resolved {q}: {why}");
        let evidence = json!({
            "query": q,
            "qtype": rows.qtype.get(i),
            "rcode": rows.rcode.get(i),
            "answers": rows.answers.get(i),
            "site": site,
            "name_shape": shape,
            "longest_label": label.len(),
            "label_entropy": (entropy * 100.0).round() / 100.0,
            "baseline": {
                "known_sites": p.dns_sites.len(),
                "top_sites": top_keys(&p.dns_sites, 5),
                "functions_resolving_site": fleet,
            }
        });
        self.cand(Cand {
            req,
            kind: Kind::UnusualDns,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty,
        });
    }

    fn process(
        &mut self,
        rows: &Rows<'_>,
        i: usize,
        req: u32,
        t: i64,
        p: &FunctionProfile,
        parsed: Option<Parsed>,
    ) {
        let Some(exe) = rows.exe.get(i) else { return };
        let Some(func) = self.reqs.reqs.get(req as usize).map(|r| r.func) else {
            return;
        };
        // A shell's command line, judged against the function's command
        // lines when the model knows them.
        let argv = rows.args.get(i);
        let script = shell::script_of(exe, &argv, rows.cmdline.get(i));
        let memo = match (&script, &p.shell) {
            (Some(s), Some(_)) => Some(self.hasher.hash_one((func, 5u8, exe, &**s))),
            _ => None,
        };
        if let Some(m) = memo
            && self.known.contains(&m)
        {
            // The same line was judged normal before (and so runs no
            // `sleep` the function's lines do not).
            if let Some(acc) = self.reqs.get_mut(req) {
                touch(acc, t);
                acc.proc += 1;
            }
            return;
        }
        let parsed = parsed.or_else(|| script.as_deref().map(shell::parse));
        let args = if argv.is_empty() {
            command_args(rows, i)
        } else {
            argv
        };
        let base = exe.rsplit('/').next().unwrap_or(exe);
        let sleepy = base == "sleep"
            || match &parsed {
                // A `sleep` inside a command line, unless its lines often sleep.
                Some(Parsed::Line(l)) => {
                    shell::runs_sleep(l)
                        && !p
                            .shell
                            .as_ref()
                            .is_some_and(|s| s.commands.contains_key("sleep"))
                }
                Some(Parsed::Unparsed(_)) => {
                    script.as_deref().is_some_and(|s| s.contains("sleep "))
                }
                None => args.iter().any(|a| a.contains("sleep ")),
            };
        if let Some(acc) = self.reqs.get_mut(req) {
            touch(acc, t);
            acc.proc += 1;
            acc.sleep_child |= sleepy;
        }
        let shape = names::exe_shape(exe);
        let known_exe = p.exes.contains_key(&shape);
        let mut line_judged = false;
        if let (Some(script), Some(parsed), Some(base)) = (&script, &parsed, &p.shell) {
            let findings = shell::judge(parsed, base);
            line_judged = matches!(parsed, Parsed::Line(_));
            if findings.is_empty() {
                if known_exe && let Some(m) = memo {
                    self.known.insert(m);
                }
            } else {
                self.shell_line(rows, i, req, t, exe, script, parsed, base, &findings);
            }
        }
        // A parsed command line was judged by what it runs; the shell's own
        // argument shape (`-c P`) says less.
        if known_exe && line_judged {
            return;
        }
        let args_shape = format!("{shape} {}", names::args_shape(&args));
        if known_exe && p.arg_shapes.contains_key(&args_shape) {
            return;
        }
        let risky = names::risky_exe(exe) || names::risky_args(&args);
        let cmd: String = if args.is_empty() {
            exe.to_string()
        } else {
            args.join(" ")
        };
        let cmd_short: String = cmd.chars().take(300).collect();
        let (severity, within, why, novelty) = if !known_exe && !p.spawns() {
            let n = if risky { None } else { Some(shape.clone()) };
            (
                Severity::High,
                0.8,
                "it never starts any process".to_string(),
                n,
            )
        } else if !known_exe && risky {
            (
                Severity::High,
                0.7,
                format!("it only ever starts {}", top_keys(&p.exes, 3).join(", ")),
                None,
            )
        } else if !known_exe {
            (
                Severity::Medium,
                0.5,
                format!("it only ever starts {}", top_keys(&p.exes, 3).join(", ")),
                Some(shape.clone()),
            )
        } else if risky {
            (
                Severity::Medium,
                0.6,
                "a known program with shell or download arguments it never uses".to_string(),
                None,
            )
        } else {
            (
                Severity::Low,
                0.3,
                "a known program with an argument pattern not seen before".to_string(),
                Some(args_shape.clone()),
            )
        };
        let fname = &self.fn_names[func as usize];
        let summary = format!(
            "{fname} started `{}`: {why}",
            cmd_short.chars().take(120).collect::<String>()
        );
        let evidence = json!({
            "exe": exe,
            "cmdline": cmd_short,
            "parent_exe": rows.parent_exe.get(i),
            "baseline": {
                "spawns": p.spawns(),
                "known_executables": top_keys(&p.exes, 5),
                "known_argument_patterns": p.arg_shapes.len(),
            }
        });
        self.cand(Cand {
            req,
            kind: Kind::UnexpectedProcess,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty,
        });
    }

    /// A shell command line that differs from the function's command lines.
    #[allow(clippy::too_many_arguments)]
    fn shell_line(
        &mut self,
        rows: &Rows<'_>,
        i: usize,
        req: u32,
        t: i64,
        exe: &str,
        script: &str,
        parsed: &Parsed,
        base: &ShellProfile,
        findings: &[shell::Finding],
    ) {
        let Some(func) = self.reqs.reqs.get(req as usize).map(|r| r.func) else {
            return;
        };
        let Some(top) = findings.first() else { return };
        let highs = findings
            .iter()
            .filter(|f| f.level == shell::Level::High)
            .count();
        let (severity, within) = match top.level {
            shell::Level::High => (Severity::High, (0.7 + 0.05 * highs as f64).min(0.95)),
            shell::Level::Medium => (Severity::Medium, 0.55),
            shell::Level::Low => (Severity::Low, 0.3),
        };
        // Only what may be a new normal (a new, harmless command after a
        // deploy) can be settled as one.
        let novelty = (top.level < shell::Level::High).then(|| {
            let keys: Vec<&str> = findings.iter().map(|f| f.what.as_str()).collect();
            format!("shell|{}", keys.join(","))
        });
        let line: String = script.chars().take(300).collect();
        let shown: String = line.chars().take(160).collect();
        let whys: Vec<&str> = findings.iter().take(4).map(|f| f.why.as_str()).collect();
        let summary = format!(
            "{} ran the shell command line `{}`{}: it {} (its {} command lines in training run {})",
            self.fn_names[func as usize],
            shown.escape_debug(),
            if line.len() < script.len() { "..." } else { "" },
            whys.join("; it "),
            base.lines,
            if base.commands.is_empty() {
                "nothing".to_string()
            } else {
                top_keys(&base.commands, 5)
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let (commands, structure, network, parse_error) = match parsed {
            Parsed::Line(l) => {
                let mut names: Vec<&str> = Vec::new();
                for c in &l.commands {
                    if !names.contains(&c.name.as_str()) {
                        names.push(c.name.as_str());
                    }
                }
                (
                    json!(names),
                    json!(l.structure.iter().collect::<Vec<_>>()),
                    json!(l.network_args.iter().take(10).collect::<Vec<_>>()),
                    Value::Null,
                )
            }
            Parsed::Unparsed(why) => (json!([]), json!([]), json!([]), json!(why)),
        };
        let evidence = json!({
            "exe": exe,
            "cmdline": line,
            "parent_exe": rows.parent_exe.get(i),
            "commands": commands,
            "structure": structure,
            "network_arguments": network,
            "parse_error": parse_error,
            "findings": findings.iter().map(|f| json!({
                "rule": f.rule,
                "what": f.what,
                "level": match f.level {
                    shell::Level::High => "high",
                    shell::Level::Medium => "medium",
                    shell::Level::Low => "low",
                },
            })).collect::<Vec<_>>(),
            "baseline": {
                "command_lines": base.lines,
                "unparseable_lines": base.unparsed,
                "commands": top_keys(&base.commands, 10),
                "structure": base.structure.keys().collect::<Vec<_>>(),
                "redirects": top_keys(&base.redirects, 5),
                "lines_with_network_arguments": base.network_lines,
                "usual_shapes": top_keys(&base.shapes, 3),
            }
        });
        self.cand(Cand {
            req,
            kind: Kind::UnexpectedProcess,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty,
        });
    }

    fn network(
        &mut self,
        rows: &Rows<'_>,
        i: usize,
        f: u32,
        req: u32,
        t: i64,
        p: &FunctionProfile,
    ) {
        let port = i32_at(rows.remote_port, i).unwrap_or(0);
        let bytes_out = i64_at(rows.bytes_out, i).unwrap_or(0).max(0);
        let bytes_in = i64_at(rows.bytes_in, i);
        let inbound = rows.direction.get(i) == Some("inbound");
        let ip = rows.remote_ip.get(i).unwrap_or("");
        let named: Option<&str> = rows
            .remote_host
            .get(i)
            .filter(|h| !h.is_empty() && !names::is_ip(h));
        if let Some(acc) = self.reqs.get_mut(req) {
            touch(acc, t);
            acc.net += 1;
            acc.bytes_out += bytes_out as u64;
            acc.bytes_in += bytes_in.unwrap_or(0).max(0) as u64;
        }
        if inbound {
            return;
        }
        if let Some(host) = named {
            self.peer(req, f, t, host, ip, port, bytes_out, bytes_in, p);
            return;
        }
        match self.name_of(f, ip) {
            Some(host) => self.peer(req, f, t, &host, ip, port, bytes_out, bytes_in, p),
            None => self.deferred.push(Deferred {
                req,
                time_us: t,
                ip: ip.to_string(),
                port,
                protocol: rows.protocol.get(i).unwrap_or("tcp").to_string(),
                bytes_out,
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn peer(
        &mut self,
        req: u32,
        f: u32,
        t: i64,
        host: &str,
        ip: &str,
        port: i32,
        bytes_out: i64,
        bytes_in: Option<i64>,
        p: &FunctionProfile,
    ) {
        if bytes_in.unwrap_or(0) == 0
            && let Some(acc) = self.reqs.get_mut(req)
        {
            acc.waiting_on = Some(host.into());
        }
        let memo = self.hasher.hash_one((f, 2u8, host, port));
        if self.known.contains(&memo) {
            return;
        }
        let shape = names::dns_shape(host);
        let site = names::site(host);
        let known_host = p.peers.contains_key(&format!("{shape}|{port}"));
        let known_site_port = p.peer_sites.contains_key(&format!("{site}|{port}"));
        if known_host {
            self.known.insert(memo);
            return;
        }
        let site_known = p
            .peer_sites
            .keys()
            .any(|k| k.rsplit_once('|').is_some_and(|(s, _)| s == site))
            || p.dns_sites.contains_key(&site);
        let open = !site_known && open_ended(&p.peer_sites);
        let fleet = self.model.fleet_users(&site);
        let (severity, within, why, novelty) = if names::suspicious_port(port) {
            (
                Severity::High,
                0.8,
                format!("port {port} is typical of miners and shells, and new for it"),
                None,
            )
        } else if open {
            (
                Severity::Low,
                0.3,
                format!("{site} is new, but this function meets new peers all the time"),
                Some(format!("{site}|{port}")),
            )
        } else if known_site_port {
            self.known.insert(memo);
            return;
        } else if site_known {
            (
                Severity::Low,
                0.35,
                format!("{site} is a known peer, but not on port {port}"),
                Some(format!("{site}|{port}")),
            )
        } else if fleet > 0 {
            (
                Severity::Medium,
                0.5,
                format!(
                    "{site} is not among its {} (other functions use it)",
                    plural(p.peer_sites.len(), "peer", "peers")
                ),
                Some(format!("{site}|{port}")),
            )
        } else {
            (
                Severity::High,
                0.55,
                format!(
                    "{site} is not among its {} and no function in the fleet talks to it",
                    plural(p.peer_sites.len(), "peer", "peers")
                ),
                Some(format!("{site}|{port}")),
            )
        };
        let summary = format!(
            "{} connected to {host}:{port}: {why}",
            self.fn_names[f as usize]
        );
        let evidence = json!({
            "remote_host": host,
            "remote_ip": ip,
            "remote_port": port,
            "bytes_out": bytes_out,
            "site": site,
            "baseline": {
                "known_peers": top_keys(&p.peer_sites, 6),
                "functions_resolving_site": fleet,
            }
        });
        self.cand(Cand {
            req,
            kind: Kind::UnknownHost,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty,
        });
    }

    fn raw_ip(&mut self, d: Deferred, p: &FunctionProfile) {
        let Some(f) = self.reqs.reqs.get(d.req as usize).map(|r| r.func) else {
            return;
        };
        if let Some(host) = self.name_of(f, &d.ip) {
            self.peer(
                d.req,
                f,
                d.time_us,
                &host,
                &d.ip,
                d.port,
                d.bytes_out,
                None,
                p,
            );
            return;
        }
        let prefix = names::ip_prefix(&d.ip);
        if p.raw_prefixes.contains(&prefix) || p.resolved_prefixes.contains(&prefix) {
            return;
        }
        let private = names::is_private_ip(&d.ip);
        let (severity, within, why, novelty) = if private {
            (
                Severity::Low,
                0.3,
                "a private address outside its usual networks".to_string(),
                Some(prefix.clone()),
            )
        } else if d.bytes_out > 1024 || names::suspicious_port(d.port) {
            (
                Severity::High,
                0.85,
                format!(
                    "a public address it never looked up, sending {} bytes",
                    d.bytes_out
                ),
                None,
            )
        } else {
            (
                Severity::High,
                0.75,
                "a public address it never looked up".to_string(),
                None,
            )
        };
        let summary = format!(
            "{} connected to raw IP {}:{} ({}): {why}",
            self.fn_names[f as usize], d.ip, d.port, d.protocol
        );
        let evidence = json!({
            "remote_ip": d.ip,
            "remote_port": d.port,
            "protocol": d.protocol,
            "bytes_out": d.bytes_out,
            "prior_lookup": false,
            "baseline": {
                "raw_ip_networks": p.raw_prefixes.len(),
                "known_peers": top_keys(&p.peer_sites, 6),
            }
        });
        self.cand(Cand {
            req: d.req,
            kind: Kind::UnknownHost,
            severity,
            within,
            time_us: d.time_us,
            summary,
            evidence,
            novelty,
        });
    }

    fn file(&mut self, rows: &Rows<'_>, i: usize, req: u32, t: i64, p: &FunctionProfile) {
        let Some(path) = rows.path.get(i) else { return };
        let func = match self.reqs.get_mut(req) {
            Some(acc) => {
                touch(acc, t);
                acc.file += 1;
                acc.func
            }
            None => return,
        };
        let op = rows.op.get(i).unwrap_or("read");
        let memo = self.hasher.hash_one((func, 3u8, path, op));
        if self.known.contains(&memo) {
            return;
        }
        let class = op_class(Some(op));
        let sensitive = names::sensitive_path(path);
        let shape = names::path_shape(path);
        let dir = names::dir_of(&shape, 3);
        let known_dir = p.file_dirs.contains_key(&format!("{dir}|{class}"));
        let (severity, within, why, novelty) = match sensitive {
            Some(what) if !p.sensitive_paths.contains(path) => (
                Severity::High,
                0.85,
                format!("{what}, which it never touches"),
                None,
            ),
            Some(_) => {
                self.known.insert(memo);
                return;
            }
            None if known_dir => {
                self.known.insert(memo);
                return;
            }
            None if class == "exec"
                || (op == "chmod" && (dir.starts_with("/tmp") || dir.starts_with("/dev/shm"))) =>
            {
                (
                    Severity::High,
                    0.7,
                    format!("it never {op}s files under {dir}"),
                    None,
                )
            }
            None if class == "write" && hidden_in_scratch(path) => (
                Severity::High,
                0.7,
                format!("a hidden file in scratch space, and it never writes under {dir}"),
                None,
            ),
            None if class == "write" => (
                Severity::Low,
                0.4,
                format!("it never writes under {dir}"),
                Some(format!("{dir}|{class}")),
            ),
            None => (
                Severity::Low,
                0.3,
                format!("it never reads under {dir}"),
                Some(format!("{dir}|{class}")),
            ),
        };
        let summary = format!(
            "{} did `{op}` on {path}: {why}",
            self.fn_names[func as usize]
        );
        let mut dirs: BTreeMap<String, u64> = BTreeMap::new();
        for (k, v) in &p.file_dirs {
            *dirs
                .entry(k.split('|').next().unwrap_or("").to_string())
                .or_insert(0) += v;
        }
        let evidence = json!({
            "path": path,
            "op": op,
            "path_shape": shape,
            "baseline": { "known_directories": top_keys(&dirs, 6) }
        });
        self.cand(Cand {
            req,
            kind: Kind::UnusualFileAccess,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty,
        });
    }

    fn api(&mut self, rows: &Rows<'_>, i: usize, f: u32, req: u32, t: i64, p: &FunctionProfile) {
        let (Some(service), Some(action)) = (rows.service.get(i), rows.action.get(i)) else {
            return;
        };
        let denied = rows.error_code.get(i).is_some_and(is_denied);
        if let Some(acc) = self.reqs.get_mut(req) {
            touch(acc, t);
            acc.api += 1;
            if denied {
                acc.denied += 1;
            }
        }
        let memo = self.hasher.hash_one((f, 4u8, service, action, denied));
        if self.known.contains(&memo) {
            return;
        }
        let key = format!("{service}:{action}");
        if !denied {
            let w = &mut self.window[f as usize];
            if !w.used.contains(&key) {
                w.used.insert(key.clone());
            }
        }
        if p.api_actions.contains_key(&key) {
            self.known.insert(memo);
            return;
        }
        let sensitive = names::sensitive_action(service, action);
        let new_service = !p.api_services.contains(service);
        let (severity, within, why, novelty) = if sensitive {
            (
                Severity::High,
                0.8,
                "a reconnaissance or privilege action it never calls".to_string(),
                None,
            )
        } else if new_service {
            (
                Severity::Medium,
                0.6,
                format!("it never calls {service}"),
                Some(key.clone()),
            )
        } else {
            (
                Severity::Medium,
                0.4,
                format!("it calls {service} but never {action}"),
                Some(key.clone()),
            )
        };
        let summary = format!(
            "{} called {key}{}: {why}",
            self.fn_names[f as usize],
            if denied { " and was denied" } else { "" }
        );
        let evidence = json!({
            "service": service,
            "action": action,
            "resource": rows.resource.get(i),
            "error_code": rows.error_code.get(i),
            "baseline": {
                "known_actions": top_keys(&p.api_actions, 8),
                "granted": p.permissions,
            }
        });
        self.cand(Cand {
            req,
            kind: Kind::UnusualApiCall,
            severity,
            within,
            time_us: t,
            summary,
            evidence,
            novelty,
        });
    }

    /// Settles what needs whole invocations and the whole window.
    pub fn finish(mut self) -> Detection {
        if let Some(last) = self.pending.take() {
            self.score(last);
        }
        // Raw-IP connections, now that every lookup of the window is known.
        let deferred = std::mem::take(&mut self.deferred);
        for d in deferred {
            let f = self
                .reqs
                .reqs
                .get(d.req as usize)
                .map(|r| r.func)
                .unwrap_or(0);
            let p: &'m FunctionProfile = self
                .profiles
                .get(f as usize)
                .copied()
                .flatten()
                .unwrap_or(EMPTY);
            self.raw_ip(d, p);
        }
        // Timeout waves: (peer, 15-minute bucket) -> functions timing out waiting on it.
        let mut waves: HashMap<(&str, i64), HashSet<u32>> = HashMap::new();
        for acc in &self.reqs.reqs {
            if let (Some(host), Some(t)) = (acc.waiting_on.as_deref(), acc.inv_us)
                && acc.is_timeout()
            {
                waves
                    .entry((host, t / 900_000_000))
                    .or_default()
                    .insert(acc.func);
            }
        }
        let wave_size = |host: &str, t: i64| -> usize {
            let b = t / 900_000_000;
            let mut fs: HashSet<u32> = HashSet::new();
            for bb in [b - 1, b, b + 1] {
                if let Some(s) = waves.get(&(host, bb)) {
                    fs.extend(s.iter().copied());
                }
            }
            fs.len()
        };
        let mut post_deploy: Vec<u64> = vec![0; self.fn_names.len()];
        let mut invocations = 0u64;
        let mut extra: Vec<Cand> = Vec::new();
        for (ri, acc) in self.reqs.reqs.iter().enumerate() {
            let Some(t) = acc.inv_us else { continue };
            invocations += 1;
            let f = acc.func as usize;
            if self.window[f].deploy_us.is_some_and(|d| t >= d) {
                post_deploy[f] += 1;
            }
            let p: &FunctionProfile = self.profiles[f].unwrap_or(EMPTY);
            let fname = &self.fn_names[f];
            let req = ri as u32;
            // Lookup volume and TXT bursts.
            let dns_cap = (p.dns_max_per_invocation.max(4) * 3) as u32;
            let txt_cap = (p.txt_max_per_invocation.max(2) * 3) as u32;
            if acc.dns > dns_cap || acc.txt > txt_cap {
                extra.push(Cand {
                    req,
                    kind: Kind::UnusualDns,
                    severity: Severity::High,
                    within: 0.7,
                    time_us: t,
                    summary: format!(
                        "{fname} made {} DNS lookups ({} TXT) in one invocation; its most in training was {} ({} TXT): a burst like DNS tunnelling",
                        acc.dns, acc.txt, p.dns_max_per_invocation, p.txt_max_per_invocation
                    ),
                    evidence: json!({"lookups": acc.dns, "txt_lookups": acc.txt,
                        "baseline": {"max_lookups_per_invocation": p.dns_max_per_invocation,
                                     "max_txt_per_invocation": p.txt_max_per_invocation}}),
                    novelty: None,
                });
            }
            // Denied bursts.
            if acc.denied >= 3 && acc.denied as u64 > p.denied_max_per_invocation.saturating_mul(2)
            {
                extra.push(Cand {
                    req,
                    kind: Kind::UnusualApiCall,
                    severity: Severity::High,
                    within: 0.75,
                    time_us: t,
                    summary: format!(
                        "{fname} had {} cloud API calls denied in one invocation; its most in training was {}",
                        acc.denied, p.denied_max_per_invocation
                    ),
                    evidence: json!({"denied_calls": acc.denied, "api_calls": acc.api,
                        "baseline": {"max_denied_per_invocation": p.denied_max_per_invocation}}),
                    novelty: None,
                });
            }
            // Timeouts.
            if acc.is_timeout() {
                if let Some(idle) = acc
                    .idle()
                    .or_else(|| acc.sleep_child.then(|| "ran a `sleep` child".to_string()))
                {
                    let normal_idle = p.timeouts >= 5 && p.idle_timeouts * 3 >= p.timeouts;
                    let waiting = acc.waiting_on.as_deref().map(|h| (h, wave_size(h, t)));
                    let (severity, within, why) = if let Some((host, n)) =
                        waiting.filter(|(_, n)| *n >= 3)
                    {
                        (
                            Severity::Low,
                            0.3,
                            format!(
                                "it was waiting on {host}, where {n} functions timed out together: an outage"
                            ),
                        )
                    } else if acc.sleep_child {
                        (
                            Severity::High,
                            0.9,
                            "it ran a `sleep` child process".to_string(),
                        )
                    } else if let Some((host, _)) = waiting {
                        (
                            Severity::Low,
                            0.4,
                            format!("but it had a connection open to {host}, waiting on it"),
                        )
                    } else if normal_idle {
                        (
                            Severity::Low,
                            0.3,
                            format!(
                                "but {} of its {} training timeouts were idle too",
                                p.idle_timeouts, p.timeouts
                            ),
                        )
                    } else {
                        (
                            Severity::High,
                            0.75,
                            format!(
                                "{} of its {} training timeouts looked like that",
                                p.idle_timeouts, p.timeouts
                            ),
                        )
                    };
                    extra.push(Cand {
                        req,
                        kind: Kind::SleepTimeout,
                        severity,
                        within,
                        time_us: t,
                        summary: format!("{fname} timed out after it {idle}; {why}"),
                        evidence: json!({
                            "duration_ms": acc.duration_ms,
                            "timeout_ms": acc.timeout_ms,
                            "cpu_ms": acc.cpu_ms,
                            "last_activity": acc.last_us.map(rfc3339_us),
                            "waiting_on": acc.waiting_on.as_deref(),
                            "sleep_child": acc.sleep_child,
                            "baseline": {"timeouts": p.timeouts, "idle_timeouts": p.idle_timeouts,
                                         "invocations": p.invocations}
                        }),
                        novelty: None,
                    });
                }
                continue;
            }
            // Numbers.
            if let Some(num) = &p.numeric {
                let m = acc.measures();
                let (ratio, top) = num.score(&m);
                if ratio > 1.5 {
                    let severity = if ratio > 5.0 {
                        Severity::Medium
                    } else {
                        Severity::Low
                    };
                    extra.push(Cand {
                        req,
                        kind: Kind::BehaviourAnomaly,
                        severity,
                        within: ((ratio - 1.5) / 6.0).min(1.0),
                        time_us: t,
                        summary: format!(
                            "{fname}'s invocation was {ratio:.1}x farther from its normal profile than 99.9% of training: {}; {}",
                            num.describe(top[0], &m),
                            num.describe(top[1], &m)
                        ),
                        evidence: json!({
                            "distance_ratio": (ratio * 100.0).round() / 100.0,
                            "duration_ms": acc.duration_ms, "cpu_ms": acc.cpu_ms,
                            "max_memory_mb": acc.max_memory_mb, "bytes_out": acc.bytes_out,
                            "dns": acc.dns, "network": acc.net, "processes": acc.proc,
                            "files": acc.file, "api_calls": acc.api, "cold_start": acc.cold,
                            "baseline": {"invocations": num.n, "clusters": num.centroids.len()}
                        }),
                        novelty: Some("profile".to_string()),
                    });
                }
            }
        }
        for c in extra {
            self.cand(c);
        }

        // New things that became the function's normal right after a deploy.
        let mut settled: HashMap<(u32, String), bool> = HashMap::new();
        for ((f, key), (reqs, first)) in &self.novelties {
            let w = &self.window[*f as usize];
            let widespread = w.deploy_us.is_some_and(|d| *first >= d) && {
                let n = reqs.len() as u64;
                let base = post_deploy[*f as usize];
                n >= 5 && n * 10 >= base
            };
            settled.insert((*f, key.clone()), widespread);
        }
        let mut first_of: HashMap<(u32, String), (i64, u32)> = HashMap::new();
        for c in &self.cands {
            let Some(key) = &c.novelty else { continue };
            let f = self
                .reqs
                .reqs
                .get(c.req as usize)
                .map(|r| r.func)
                .unwrap_or(0);
            let k = (f, format!("{}|{key}", c.kind));
            if settled.get(&k).copied().unwrap_or(false) {
                let e = first_of.entry(k).or_insert((c.time_us, c.req));
                if (c.time_us, c.req) < *e {
                    *e = (c.time_us, c.req);
                }
            }
        }
        // The rest of a settled novelty's sightings are counted in the first one's evidence.
        self.cands.retain(|c| {
            let Some(key) = &c.novelty else { return true };
            let f = self
                .reqs
                .reqs
                .get(c.req as usize)
                .map(|r| r.func)
                .unwrap_or(0);
            match first_of.get(&(f, format!("{}|{key}", c.kind))) {
                Some(&(t, r)) => t == c.time_us && r == c.req,
                None => true,
            }
        });
        for c in &mut self.cands {
            let Some(key) = &c.novelty else { continue };
            let f = self
                .reqs
                .reqs
                .get(c.req as usize)
                .map(|r| r.func)
                .unwrap_or(0);
            if c.severity > Severity::Low
                && settled
                    .get(&(f, format!("{}|{key}", c.kind)))
                    .copied()
                    .unwrap_or(false)
            {
                let w = &self.window[f as usize];
                let n = self
                    .novelties
                    .get(&(f, format!("{}|{key}", c.kind)))
                    .map(|e| e.0.len())
                    .unwrap_or(0);
                c.severity = Severity::Low;
                c.within = 0.4;
                c.summary.push_str(&format!(
                    "; it appeared after the deploy of {} and is in {n} of {} invocations since: likely the new code",
                    w.deploy_what, post_deploy[f as usize]
                ));
                if let Value::Object(o) = &mut c.evidence {
                    o.insert(
                        "after_deploy".into(),
                        json!({
                            "deploy": w.deploy_what,
                            "deploy_time": w.deploy_us.map(rfc3339_us),
                            "invocations_with_it": n,
                            "invocations_since": post_deploy[f as usize],
                        }),
                    );
                }
            }
        }

        // Functions the model has never seen: everything is new to them, so
        // only what is suspicious in itself (novelty-free findings) stays up.
        for c in &mut self.cands {
            let f = self
                .reqs
                .reqs
                .get(c.req as usize)
                .map(|r| r.func)
                .unwrap_or(0);
            if c.novelty.is_some()
                && c.severity > Severity::Low
                && self.profiles[f as usize].is_none()
            {
                c.severity = Severity::Low;
                c.within = 0.5;
                c.summary.push_str(
                    "; this function is not in the model yet (train again to include it)",
                );
            }
        }

        // One alert per (request, kind): the strongest; then correlation.
        let mut best: BTreeMap<(u32, Kind), Cand> = BTreeMap::new();
        for c in std::mem::take(&mut self.cands) {
            let k = (c.req, c.kind);
            match best.get(&k) {
                Some(b) if (b.severity, b.within) >= (c.severity, c.within) => {}
                _ => {
                    best.insert(k, c);
                }
            }
        }
        let mut highs: HashMap<u32, usize> = HashMap::new();
        for c in best.values() {
            if c.severity >= Severity::High {
                *highs.entry(c.req).or_insert(0) += 1;
            }
        }
        let mut alerts: Vec<(i64, Alert)> = Vec::with_capacity(best.len());
        for c in best.into_values() {
            let Some(acc) = self.reqs.reqs.get(c.req as usize) else {
                continue;
            };
            let function = self.fn_names[acc.func as usize].clone();
            let mut severity = c.severity;
            let mut summary = c.summary;
            if severity == Severity::High && highs.get(&c.req).copied().unwrap_or(0) >= 3 {
                severity = Severity::Critical;
                summary.push_str(" (with other high-severity findings in the same invocation)");
            }
            alerts.push((
                c.time_us,
                Alert {
                    id: alert_id(c.kind, &function, Some(self.reqs.id(c.req)), ""),
                    time: rfc3339_us(c.time_us),
                    function,
                    request_id: Some(self.reqs.id(c.req).to_string()),
                    kind: c.kind,
                    severity,
                    score: severity.score(c.within),
                    summary,
                    evidence: c.evidence,
                },
            ));
        }
        self.over_permissive(&mut alerts);
        let mut trail = std::mem::take(&mut self.trail);
        for (f, w) in trail.iter_mut().enumerate() {
            let p: &FunctionProfile = self.profiles[f].unwrap_or(EMPTY);
            crate::trail::findings(&self.fn_names[f], p, w, &mut alerts);
        }
        alerts.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.function.cmp(&b.1.function))
                .then_with(|| a.1.kind.cmp(&b.1.kind))
                .then_with(|| a.1.id.cmp(&b.1.id))
        });
        let unknown_functions = self
            .fn_names
            .iter()
            .zip(self.profiles.iter())
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        // The window's tables are large and made of many small allocations:
        // freeing them is work nobody waits for.
        let tables = (
            std::mem::take(&mut self.reqs),
            std::mem::take(&mut self.window),
            std::mem::take(&mut self.novelties),
            std::mem::take(&mut self.known),
            std::mem::take(&mut self.cands),
        );
        std::thread::spawn(move || drop(tables));
        Detection {
            alerts: alerts.into_iter().map(|(_, a)| a).collect(),
            invocations,
            events: self.events,
            unknown_functions,
        }
    }

    /// Granted versus used per action and resource, from the role's policy
    /// statements (contract v1.1) when the latest configuration has them;
    /// `false` when it has none (the flat permissions are judged then).
    fn statements_over_permissive(
        &self,
        f: usize,
        name: &str,
        p: &FunctionProfile,
        alerts: &mut Vec<(i64, Alert)>,
    ) -> bool {
        let tw = &self.trail[f];
        let Some(config) = tw.latest_config(p) else {
            return false;
        };
        let Some(statements) = config.statements.as_deref() else {
            return false;
        };
        let with_resource: BTreeSet<&str> = p
            .trail
            .resources
            .keys()
            .filter_map(|k| k.split_once('|').map(|(a, _)| a))
            .collect();
        let mut used: Vec<crate::trail::Used<'_>> = p
            .trail
            .resources
            .keys()
            .filter_map(|k| k.split_once('|'))
            .map(|(a, r)| (a, Some(r)))
            .collect();
        used.extend(
            p.api_actions
                .keys()
                .chain(self.window[f].used.iter())
                .map(String::as_str)
                .filter(|a| !with_resource.contains(a))
                .map(|a| (a, None)),
        );
        let keys: Vec<String> = tw
            .calls
            .iter()
            .filter(|c| !c.denied)
            .map(|c| format!("{}:{}", c.service, c.action))
            .collect();
        for (c, k) in tw.calls.iter().filter(|c| !c.denied).zip(keys.iter()) {
            used.push((k.as_str(), c.resource.as_deref()));
        }
        let Some(judged) = crate::trail::over_broad(statements, &used, &PLATFORM_ACTIONS) else {
            return false;
        };
        if !judged.is_over_permissive() {
            return true;
        }
        let severity = if judged.admin {
            Severity::Medium
        } else {
            Severity::Low
        };
        let broad: Vec<String> = judged
            .broader_than_use
            .iter()
            .map(|b| {
                format!(
                    "{} on {}",
                    b["grant"].as_str().unwrap_or(""),
                    b["on"].as_str().unwrap_or("")
                )
            })
            .collect();
        let listed: Vec<&str> = judged
            .unused
            .iter()
            .chain(broad.iter())
            .take(5)
            .map(String::as_str)
            .collect();
        let summary = if judged.admin {
            format!(
                "{name}'s role grants administrative access (`*` on every resource), far more than the {} it uses",
                plural(used.len(), "call pattern", "call patterns")
            )
        } else {
            format!(
                "{name}'s role grants more than it uses: {} never used and {} broader than its use ({})",
                plural(judged.unused.len(), "grant", "grants"),
                plural(
                    judged.broader_than_use.len(),
                    "wildcard grant",
                    "wildcard grants"
                ),
                listed.join(", ")
            )
        };
        let mut disc: Vec<&str> = judged
            .unused
            .iter()
            .chain(broad.iter())
            .map(String::as_str)
            .collect();
        disc.sort_unstable();
        alerts.push((
            config.time_us,
            Alert {
                id: alert_id(Kind::OverPermissive, name, None, &disc.join(",")),
                time: rfc3339_us(config.time_us),
                function: name.to_string(),
                request_id: None,
                kind: Kind::OverPermissive,
                severity,
                score: severity.score(
                    (judged.unused.len() + judged.broader_than_use.len()) as f64
                        / (judged.unused.len() + judged.broader_than_use.len() + judged.used.len())
                            .max(1) as f64,
                ),
                summary,
                evidence: json!({
                    "role_arn": config.role_arn,
                    "unused_grants": judged.unused,
                    "broader_than_use": judged.broader_than_use,
                    "used_grants": judged.used,
                    "not_judged": judged.unjudged,
                    "admin": judged.admin,
                    "observed_since": self.model.from,
                }),
            },
        ));
        true
    }

    /// Roles that grant more than the function used in training and the window.
    fn over_permissive(&self, alerts: &mut Vec<(i64, Alert)>) {
        // The window's first invocation: the time of a finding about a role
        // whose grants come from training only. Found once: a pass over every
        // request per function made this the costliest step of a fleet's detect.
        let mut first_invocation: Option<i64> = None;
        for (f, name) in self.fn_names.iter().enumerate() {
            let p: &FunctionProfile = self.profiles[f].unwrap_or(EMPTY);
            let w = &self.window[f];
            if self.statements_over_permissive(f, name, p, alerts) {
                continue;
            }
            let (time_us, granted) = match &w.permissions {
                Some((t, g)) => (*t, g.clone()),
                None if !p.permissions.is_empty() => (
                    *first_invocation.get_or_insert_with(|| {
                        self.reqs
                            .reqs
                            .iter()
                            .filter_map(|r| r.inv_us)
                            .min()
                            .unwrap_or(0)
                    }),
                    p.permissions.clone(),
                ),
                None => continue,
            };
            let used: BTreeSet<&str> = p
                .api_actions
                .keys()
                .map(String::as_str)
                .chain(w.used.iter().map(String::as_str))
                .collect();
            let unused: Vec<&String> = granted
                .iter()
                .filter(|g| {
                    !used.iter().any(|u| names::grant_matches(g, u))
                        && !PLATFORM_ACTIONS.iter().any(|u| names::grant_matches(g, u))
                })
                .collect();
            let wildcards: Vec<&String> = granted.iter().filter(|g| g.contains('*')).collect();
            let admin = granted
                .iter()
                .any(|g| g == "*" || g == "*:*" || g.starts_with("iam:*"));
            if unused.is_empty() && !admin {
                continue;
            }
            let severity = if admin {
                Severity::Medium
            } else {
                Severity::Low
            };
            let mut extra: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            extra.sort_unstable();
            let listed = unused
                .iter()
                .take(5)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let summary = match (unused.is_empty(), admin) {
                (true, _) => format!(
                    "{name}'s role grants full administrative access (`*`), far more than the {} actions it uses",
                    used.len()
                ),
                (false, true) => format!(
                    "{name}'s role grants full administrative access and {} it has not used ({listed})",
                    plural(unused.len(), "permission", "permissions")
                ),
                (false, false) => format!(
                    "{name}'s role grants {} it has not used ({listed})",
                    plural(unused.len(), "permission", "permissions")
                ),
            };
            alerts.push((
                time_us,
                Alert {
                    id: alert_id(Kind::OverPermissive, name, None, &extra.join(",")),
                    time: rfc3339_us(time_us),
                    function: name.clone(),
                    request_id: None,
                    kind: Kind::OverPermissive,
                    severity,
                    score: severity.score(unused.len() as f64 / granted.len().max(1) as f64),
                    summary,
                    evidence: json!({
                        "granted": granted,
                        "unused": unused,
                        "wildcards": wildcards,
                        "used_actions": used.iter().take(50).collect::<Vec<_>>(),
                        "observed_since": self.model.from,
                    }),
                },
            ));
        }
    }
}

/// Functions that talk to many sites they meet only once or twice (webhook
/// deliverers, crawlers): for them a new site is normal, not news.
fn open_ended(counts: &BTreeMap<String, u64>) -> bool {
    counts.values().filter(|&&n| n <= 2).count() >= 10
}

/// `/tmp/.x/...`, `/dev/shm/.cache/...`: hidden names in scratch space.
fn hidden_in_scratch(path: &str) -> bool {
    (path.starts_with("/tmp/") || path.starts_with("/dev/shm/") || path.starts_with("/var/tmp/"))
        && path
            .split('/')
            .any(|c| c.starts_with('.') && c.len() > 1 && c != "..")
}

/// Actions the platform performs with the function's role rather than its
/// code (logging, tracing, VPC interfaces, polling its event sources): a
/// sensor never sees them, so they are never counted as unused.
const PLATFORM_ACTIONS: [&str; 21] = [
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:DescribeStream",
    "dynamodb:ListStreams",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
    "kinesis:SubscribeToShard",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ip: &str, name: u32, first: bool) -> Answer {
        Answer {
            ip: names::parse_ip(ip).expect("an address"),
            name,
            first,
        }
    }

    #[test]
    fn an_address_keeps_the_first_name_that_answered_it() {
        let mut w = FnWindow::default();
        w.answers.push(answer("10.0.0.1", 0, true));
        w.answers.push(answer("10.0.0.2", 0, false));
        w.answers.push(answer("10.0.0.2", 1, true));
        w.index_answers();
        w.answers.push(answer("::ffff:10.0.0.9", 2, true));
        w.answers.push(answer("2001:db8::1", 2, false));
        w.index_answers();
        let name = |ip: &str| w.ip_names.get(&names::parse_ip(ip).expect("ip")).copied();
        assert_eq!(name("10.0.0.1"), Some(0));
        assert_eq!(name("10.0.0.2"), Some(0));
        // Written differently, the same address.
        assert_eq!(name("2001:0db8:0:0::1"), Some(2));
        assert_eq!(name("10.0.0.3"), None);
        assert!(w.answers.is_empty());
    }

    #[test]
    fn lookups_past_the_cap_are_not_remembered() {
        let mut w = FnWindow::default();
        for i in 0..IP_NAMES as u32 - 1 {
            w.answers.push(Answer {
                ip: std::net::IpAddr::V4(std::net::Ipv4Addr::from(i)),
                name: 0,
                first: true,
            });
        }
        // The lookup that starts under the cap is taken whole; the next is not.
        w.answers.push(answer("192.0.2.1", 1, true));
        w.answers.push(answer("192.0.2.2", 1, false));
        w.answers.push(answer("198.51.100.1", 2, true));
        w.index_answers();
        assert_eq!(w.ip_names.len(), IP_NAMES + 1);
        let ip = |s: &str| names::parse_ip(s).expect("ip");
        assert_eq!(w.ip_names.get(&ip("192.0.2.2")), Some(&1));
        assert_eq!(w.ip_names.get(&ip("198.51.100.1")), None);
    }
}
