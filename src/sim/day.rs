//! One UTC day of telemetry: minute by minute, the fleet's invocations in
//! start order, each with its sensor events and its report.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::SeedableRng;
use serde_json::Value;

use super::attacks::{self, AttackSpec};
use super::behave::{self, Status};
use super::fleet::{FnSpec, Kind, Reports};
use super::inv::{FnState, Inv, Scratch, World};
use super::plan::{Plan, apigw_name, bucket_name, cdn_name, sub_seed};
use super::shapes::{self, InvRecord};
use super::util::{
    MS_PER_DAY, Rng, chance, date, int, lognorm, pick, poisson, round_to, unif, uniform, uuid,
};

/// A labelled invocation.
#[derive(Debug, Clone)]
pub struct Label {
    pub end_ms: i64,
    pub request_id: String,
    pub function: &'static str,
    pub label: &'static str,
    pub class: &'static str,
}

#[derive(Debug, Default)]
pub struct DayOut {
    pub path: PathBuf,
    pub invocations: u64,
    pub events: u64,
    pub labels: Vec<Label>,
}

pub const HARD_CASES: [&str; 6] = [
    "deploy_new_dependency",
    "traffic_spike",
    "cold_start_wave",
    "outage",
    "new_cdn_names",
    "code_in_payload",
];

/// Invocations that CloudWatch Logs will deliver together.
#[derive(Debug, Default)]
struct CwBatch {
    lines: Vec<(i64, String)>,
    invocations: u32,
    target: u32,
}

/// Share of the day's traffic in each minute: a daily rhythm, busier in the
/// (UTC) afternoon. Exact: the counts add up to `n`.
pub fn minute_counts(n: u64) -> Vec<u64> {
    let rates: Vec<f64> = (0..1440)
        .map(|m| {
            let hour = (m as f64 + 0.5) / 60.0;
            1.0 + 0.6 * ((hour - 9.0) / 24.0 * std::f64::consts::TAU).sin()
        })
        .collect();
    let total: f64 = rates.iter().sum();
    let mut out = Vec::with_capacity(1440);
    let mut cum = 0.0;
    let mut prev = 0u64;
    for r in rates {
        cum += r;
        let upto = ((n as f64) * cum / total).round() as u64;
        out.push(upto.saturating_sub(prev));
        prev = upto;
    }
    out
}

struct Day<'a> {
    plan: &'a Plan,
    day: u32,
    day_start: i64,
    hard: bool,
    r: Rng,
    world: World,
    states: Vec<FnState>,
    layers: Vec<Vec<String>>,
    versions: Vec<u32>,
    scratch: Scratch,
    out: Vec<u8>,
    batches: Vec<CwBatch>,
    invocations: u64,
    events: u64,
    labels: Vec<Label>,
}

/// Generates day `day` into `out_dir`. `done` counts invocations for the
/// progress display; `stop` is set when another day failed.
pub fn generate_day(
    plan: &Plan,
    seed: u64,
    hard_cases: bool,
    day: u32,
    out_dir: &Path,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> anyhow::Result<DayOut> {
    let day_start = plan.day_start(day);
    let path = out_dir.join(format!("telemetry-{}.jsonl.gz", date(day_start)));
    let file = File::create(&path).with_context(|| format!("writing {}", path.display()))?;
    let mut gz = GzEncoder::new(BufWriter::with_capacity(1 << 20, file), Compression::new(1));

    let mut r = Rng::seed_from_u64(sub_seed(seed, 1000 + u64::from(day)));
    let mut world = plan.world.clone();
    world.cdn.fresh = (0..25).map(|_| cdn_name(&mut r)).collect();
    world.apigw.fresh = (0..8).map(|_| apigw_name(&mut r)).collect();
    world.buckets.fresh = (0..6).map(|_| bucket_name(&mut r)).collect();

    // Each function's state at the start of the day (earlier deploys count).
    let mut states = Vec::with_capacity(world.fns.len());
    let mut layers = Vec::with_capacity(world.fns.len());
    let mut versions = Vec::with_capacity(world.fns.len());
    for (fi, f) in world.fns.iter().enumerate() {
        let mut version = f.version;
        let mut new_dep = None;
        let mut l = f.layers.clone();
        for d in plan
            .deploys
            .iter()
            .filter(|d| d.fi == fi && d.t < day_start as f64)
        {
            version = d.version;
            new_dep = Some(d.dep.clone());
            if let Some(x) = &d.extra_layer {
                l.push(x.clone());
            }
        }
        states.push(FnState {
            version: version.to_string(),
            new_dep,
        });
        layers.push(l);
        versions.push(version);
    }
    let n_fns = world.fns.len();
    let mut d = Day {
        plan,
        day,
        day_start,
        hard: hard_cases && plan.is_attack_day(day),
        r,
        world,
        states,
        layers,
        versions,
        scratch: Scratch::default(),
        out: Vec::with_capacity(1 << 20),
        batches: (0..n_fns).map(|_| CwBatch::default()).collect(),
        invocations: 0,
        events: 0,
        labels: Vec::new(),
    };
    d.run(&mut gz, &path, done, stop)?;
    let w = gz
        .finish()
        .with_context(|| format!("writing {}", path.display()))?;
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut f| f.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(DayOut {
        path,
        invocations: d.invocations,
        events: d.events,
        labels: d.labels,
    })
}

enum Item {
    Invocation {
        fi: usize,
        attack: Option<AttackSpec>,
    },
    Deploy(usize),
}

impl Day<'_> {
    fn run<W: Write>(
        &mut self,
        gz: &mut W,
        path: &Path,
        done: &AtomicU64,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let plan = self.plan;
        let fns = &plan.world.fns;
        let weights: Vec<f64> = fns.iter().map(|f| f.weight).collect();
        let total_w: f64 = weights.iter().sum();
        let mut cum_w = Vec::with_capacity(weights.len());
        let mut acc = 0.0;
        for w in &weights {
            acc += w;
            cum_w.push(acc);
        }
        let counts = minute_counts(plan.invocations_per_day);
        let cleanup = plan.fn_index(Kind::NightlyCleanup);

        // The daily configuration of every function, at 00:00:0x.
        for (fi, f) in fns.iter().enumerate() {
            let t = self.day_start + fi as i64 * 400 + int(&mut self.r, 0, 350);
            shapes::function_config(
                &mut self.out,
                f,
                &self.world.account,
                self.versions[fi],
                &self.layers[fi],
                t,
            );
            self.events += 1;
        }

        let attacks = &plan.attacks[self.day as usize];
        let mut next_attack = 0;
        let deploys: Vec<(usize, f64)> = plan
            .deploys
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.t >= self.day_start as f64 && d.t < (self.day_start + MS_PER_DAY) as f64
            })
            .map(|(i, d)| (i, d.t))
            .collect();
        let mut items: Vec<(f64, Item)> = Vec::new();
        let mut reported = 0u64;
        for (m, &count) in counts.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                anyhow::bail!("stopped");
            }
            let m_start = (self.day_start + m as i64 * 60_000) as f64;
            let m_end = m_start + 60_000.0;
            items.clear();
            for _ in 0..count {
                let t0 = m_start + unif(&mut self.r) * 60_000.0;
                let u = unif(&mut self.r) * total_w;
                let fi = cum_w.partition_point(|&c| c <= u).min(fns.len() - 1);
                items.push((t0, Item::Invocation { fi, attack: None }));
            }
            // Scheduled: the nightly cleanup every ten minutes from 01:00 to 03:50.
            if let Some(ci) = cleanup
                && (60..240).contains(&m)
                && m % 10 == 0
            {
                let t0 = m_start + uniform(&mut self.r, 0.0, 1500.0);
                items.push((
                    t0,
                    Item::Invocation {
                        fi: ci,
                        attack: None,
                    },
                ));
            }
            if self.hard {
                // Extra traffic of a spike (x10) and of a scale-out (x6).
                let extra: Vec<(usize, f64)> = plan
                    .spikes
                    .iter()
                    .map(|w| (w, 9.0))
                    .chain(plan.waves.iter().map(|w| (w, 5.0)))
                    .filter(|(w, _)| w.start < m_end && w.end > m_start)
                    .filter_map(|(w, k)| w.fi.map(|fi| (fi, k)))
                    .collect();
                for (fi, k) in extra {
                    let lambda = k * count as f64 * weights[fi] / total_w;
                    for _ in 0..poisson(&mut self.r, lambda) {
                        let t0 = m_start + unif(&mut self.r) * 60_000.0;
                        if plan
                            .spikes
                            .iter()
                            .chain(plan.waves.iter())
                            .any(|w| w.contains(fi, t0))
                        {
                            items.push((t0, Item::Invocation { fi, attack: None }));
                        }
                    }
                }
            }
            while next_attack < attacks.len() && attacks[next_attack].t0 < m_end {
                let a = &attacks[next_attack];
                items.push((
                    a.t0,
                    Item::Invocation {
                        fi: a.fi,
                        attack: Some(a.spec),
                    },
                ));
                next_attack += 1;
            }
            for (i, t) in &deploys {
                if *t >= m_start && *t < m_end {
                    items.push((*t, Item::Deploy(*i)));
                }
            }
            items.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (t0, item) in items.drain(..) {
                match item {
                    Item::Invocation { fi, attack } => self.invoke(&fns[fi], fi, t0, attack),
                    Item::Deploy(i) => self.deploy(i),
                }
            }
            // CloudWatch Logs delivers what is left every few minutes.
            if m % 3 == 2 || m == counts.len() - 1 {
                for fi in 0..self.batches.len() {
                    self.flush_batch(fi);
                }
            }
            gz.write_all(&self.out)
                .with_context(|| format!("writing {}", path.display()))?;
            self.out.clear();
            done.fetch_add(self.invocations - reported, Ordering::Relaxed);
            reported = self.invocations;
        }
        Ok(())
    }

    fn deploy(&mut self, i: usize) {
        let d = &self.plan.deploys[i];
        let f = &self.plan.world.fns[d.fi];
        if let Some(l) = &d.extra_layer {
            self.layers[d.fi].push(l.clone());
        }
        self.versions[d.fi] = d.version;
        self.states[d.fi] = FnState {
            version: d.version.to_string(),
            new_dep: Some(d.dep.clone()),
        };
        shapes::function_config(
            &mut self.out,
            f,
            &self.world.account,
            d.version,
            &self.layers[d.fi],
            d.t as i64,
        );
        self.events += 1;
    }

    fn flush_batch(&mut self, fi: usize) {
        let b = &mut self.batches[fi];
        if b.lines.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut b.lines);
        b.invocations = 0;
        b.target = 0;
        let f = &self.plan.world.fns[fi];
        shapes::cloudwatch_payload(
            &mut self.out,
            &mut self.r,
            &self.world.account,
            f,
            &self.states[fi].version,
            &lines,
        );
    }

    fn invoke(&mut self, f: &FnSpec, fi: usize, t0: f64, attack: Option<AttackSpec>) {
        let plan = self.plan;
        let r = &mut self.r;
        let hard = self.hard && attack.is_none();
        let in_outage = hard
            && f.uses_dynamodb
            && f.region == "us-east-1"
            && plan.outages.iter().any(|w| w.contains(fi, t0))
            && chance(r, 0.9);
        let in_spike = hard && plan.spikes.iter().any(|w| w.contains(fi, t0));
        let deploy_wave = plan
            .deploys
            .iter()
            .any(|d| d.fi == fi && t0 >= d.t && t0 < d.t + 5.0 * 60_000.0);
        let in_wave = hard && (deploy_wave || plan.waves.iter().any(|w| w.contains(fi, t0)));

        let rid = uuid(r);
        let mut cold_p = f.cold_p;
        if in_spike {
            cold_p = (cold_p * 3.0).min(0.5);
        }
        if in_wave {
            cold_p = if deploy_wave { 0.6 } else { 0.85 };
        }
        let cold = chance(r, cold_p);

        // Status, duration, and the window of the normal events.
        let mut shape = None;
        let (status, duration, benign_ms) = if let Some(a) = attack {
            let s = attacks::shape(r, f, a);
            let v = (s.status, s.duration, s.benign_ms);
            shape = Some(s);
            v
        } else if in_outage {
            (
                Status::Timeout,
                f.timeout_ms as f64 + unif(r) * 3.0,
                uniform(r, 5.0, 80.0),
            )
        } else {
            let u = unif(r);
            let mut status = if u < f.timeout_p {
                Status::Timeout
            } else if u < f.timeout_p + f.error_p {
                Status::Error
            } else {
                Status::Success
            };
            if status == Status::Success && chance(r, 0.0005) {
                status = Status::Crash;
            }
            let mut duration = if status == Status::Timeout {
                f.timeout_ms as f64 + unif(r) * 3.0
            } else {
                lognorm(r, f.dur_median, f.dur_sigma).min(f.timeout_ms as f64 * 0.95)
            };
            if matches!(status, Status::Error | Status::Crash) {
                duration *= uniform(r, 0.2, 1.0);
            }
            (status, duration, duration)
        };
        let duration = round_to(duration, 2);
        let init_ms = cold.then(|| round_to(lognorm(r, f.init_median, 0.25), 2));
        let end = t0 + duration;

        let mut inv = Inv {
            r,
            f,
            w: &self.world,
            st: &self.states[fi],
            s: &mut self.scratch,
            rid,
            t0,
            win: (t0, benign_ms),
            used_new_name: false,
            used_new_dep: false,
        };
        if in_outage {
            outage_events(&mut inv, cold, duration);
        } else {
            behave::activities(&mut inv, cold, status);
            behave::new_dependency(&mut inv, cold);
        }
        if let (Some(a), Some(s)) = (attack, &shape) {
            let a_start = t0 + benign_ms.min(duration) * uniform(inv.r, 0.4, 0.9);
            attacks::events(&mut inv, a, s, a_start, end - 0.5);
        }
        let Inv {
            rid,
            used_new_name,
            used_new_dep,
            ..
        } = inv;
        let r = &mut self.r;

        // Metrics.
        let (lo, hi) = f.mem_used;
        let mut max_mem = int(r, lo, hi) + if cold { 40 } else { 0 };
        let idle = in_outage
            || matches!(
                attack.map(|a| a.class),
                Some(attacks::Class::SleepTimeout | attacks::Class::SleepTimeoutChild)
            );
        if matches!(status, Status::Timeout | Status::Crash) && !idle {
            max_mem = max_mem.max((f.memory_mb as f64 * uniform(r, 0.7, 1.0)) as i64);
        }
        let mut cpu = duration * f.cpu_share * uniform(r, 0.6, 1.3);
        if status == Status::Timeout && !f.busy_timeouts {
            cpu *= uniform(r, 0.05, 1.0);
        }
        if in_outage {
            cpu = uniform(r, 2.0, (duration * 0.01).max(6.0));
        }
        if let Some(s) = &shape {
            if let Some(c) = s.cpu_ms {
                cpu = c;
            }
            if let Some(m) = s.max_mem {
                max_mem = m;
            }
        }
        let max_mem = max_mem.min(f.memory_mb);
        let cpu = round_to(cpu.min(duration * 2.0), 1);
        let error_type = match status {
            Status::Error => Some(*pick(r, f.error_types)),
            Status::Timeout => Some("Sandbox.Timedout"),
            Status::Crash => Some("Runtime.ExitError"),
            Status::Success => None,
        };
        let trigger = if f.kind == Kind::WebhookRelay && chance(r, 0.2) {
            "apigateway"
        } else {
            f.trigger
        };
        let event_bytes = int(r, f.event_bytes.0, f.event_bytes.1);
        let payload = shape.as_ref().and_then(|s| s.payload.clone());
        let sample: Option<Value> = if payload.is_some() || chance(r, f.event_p) {
            let mut v = super::samples::benign(r, f, &self.world.account);
            if let Some(p) = &payload {
                attacks::inject(r, f, &mut v, p);
            }
            Some(v)
        } else {
            None
        };

        // The sensor events, in time order, then the report.
        self.events += self.scratch.drain_sorted(&mut self.out);
        let end_ms = end.floor() as i64;
        let rec = InvRecord {
            f,
            account: &self.world.account,
            version: &self.states[fi].version,
            rid: &rid,
            t0_ms: t0.floor() as i64,
            end_ms,
            duration,
            billed: duration.ceil() as i64 + init_ms.map_or(0, |i: f64| i.ceil() as i64),
            cpu,
            max_mem,
            init_ms,
            status,
            error_type,
            trigger,
            event_bytes,
            sample: sample.as_ref(),
        };
        if f.reports == Reports::CloudWatch {
            let lines = shapes::cloudwatch_lines(r, &rec);
            let b = &mut self.batches[fi];
            b.lines.extend(lines);
            b.invocations += 1;
            if b.target == 0 {
                b.target = int(r, 2, 5) as u32;
            }
            if b.invocations >= b.target {
                self.flush_batch(fi);
            }
        } else if status == Status::Timeout && f.timeout_via_logs {
            let lines = shapes::cloudwatch_lines(r, &rec);
            shapes::cloudwatch_payload(
                &mut self.out,
                r,
                &self.world.account,
                f,
                &self.states[fi].version,
                &lines,
            );
        } else if f.telemetry_api_share > 0.0
            && sample.is_none()
            && chance(r, f.telemetry_api_share)
        {
            shapes::telemetry_batch(&mut self.out, r, &rec);
        } else {
            shapes::native(&mut self.out, &rec);
        }
        self.events += 1;
        self.invocations += 1;

        // Labels.
        let class: Option<(&'static str, &'static str)> = if let Some(a) = attack {
            Some(("attack", a.class.name()))
        } else if !hard {
            None
        } else if in_outage {
            Some(("benign_hard", "outage"))
        } else if in_spike {
            Some(("benign_hard", "traffic_spike"))
        } else if used_new_dep {
            Some(("benign_hard", "deploy_new_dependency"))
        } else if in_wave && cold {
            Some(("benign_hard", "cold_start_wave"))
        } else if matches!(f.kind, Kind::QueryRunner | Kind::TemplatePreview) && sample.is_some() {
            Some(("benign_hard", "code_in_payload"))
        } else if used_new_name && chance(&mut self.r, 0.5) {
            Some(("benign_hard", "new_cdn_names"))
        } else {
            None
        };
        if let Some((label, class)) = class {
            self.labels.push(Label {
                end_ms,
                request_id: rid,
                function: f.name,
                label,
                class,
            });
        }
    }
}

/// A shared dependency hangs: the function connects to the known host, gets
/// nothing back, and waits until it is killed.
fn outage_events(inv: &mut Inv<'_>, cold: bool, duration: f64) {
    let host = format!("dynamodb.{}.amazonaws.com", inv.f.region);
    if cold && chance(inv.r, 0.5) {
        inv.file("/etc/ssl/certs/ca-certificates.crt", "read", Some(0.01));
    }
    let p_dns = if cold { 0.9 } else { 0.45 };
    let ips = if chance(inv.r, p_dns) {
        inv.dns(&host, Some(0.5), "A", "NOERROR", None)
    } else {
        None
    };
    let ips = ips.unwrap_or_else(|| super::fleet::host_ips(&host));
    let t = inv.t_at(Some(0.9));
    let bo = int(inv.r, 600, 1500);
    inv.connect_at(Some(&host), &super::util::ip_string(ips[0]), 443, t, bo, 0);
    if chance(inv.r, 0.4) {
        // the SDK retries on another address
        let t = inv.t0 + duration * uniform(inv.r, 0.3, 0.6);
        let bo = int(inv.r, 600, 1500);
        inv.connect_at(Some(&host), &super::util::ip_string(ips[1]), 443, t, bo, 0);
    }
}

/// Counts labels per class, for the summary.
pub fn count_labels(labels: &[Label], which: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in labels.iter().filter(|l| l.label == which) {
        *m.entry(l.class.to_string()).or_insert(0) += 1;
    }
    m
}
