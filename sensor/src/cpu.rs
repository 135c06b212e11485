//! CPU time of the function's runtime, read from `/proc`.
//!
//! The runtime is a process tree: the runtime process (the hooks tell its pid)
//! and whatever it started. Two measures are taken of the tree at once:
//! - `precise_ns`: the scheduler's run time of every live thread
//!   (`/proc/PID/task/TID/schedstat`, nanoseconds), plus the children already
//!   reaped (`cutime`+`cstime`);
//! - `ticks_ns`: `utime`+`stime`+`cutime`+`cstime` of `/proc/PID/stat`, in
//!   clock ticks (100 a second on Linux), which also covers threads that ended.
//!
//! The CPU of an invocation is the difference of two readings. The precise
//! difference is used unless the tick difference is larger by more than two
//! ticks, which means threads ended in between and took their run time out of
//! the precise sum.

use std::fs;
use std::path::Path;

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on every Linux
/// architecture Lambda runs).
const TICKS_PER_SEC: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / TICKS_PER_SEC;

/// The CPU time of a process tree at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    pub precise_ns: u64,
    pub ticks_ns: u64,
    /// Processes in the tree.
    pub processes: u32,
}

impl Reading {
    /// CPU milliseconds spent from `earlier` to `self`.
    pub fn ms_since(&self, earlier: &Reading) -> f64 {
        let precise = self.precise_ns.saturating_sub(earlier.precise_ns);
        let ticks = self.ticks_ns.saturating_sub(earlier.ticks_ns);
        let ns = if ticks > precise + 2 * NS_PER_TICK {
            ticks
        } else {
            precise
        };
        (ns as f64 / 1e6 * 1000.0).round() / 1000.0
    }
}

/// Where to read: `/proc` normally, a fake tree in tests.
#[derive(Debug, Clone)]
pub struct Proc {
    root: std::path::PathBuf,
}

impl Default for Proc {
    fn default() -> Self {
        Proc {
            root: "/proc".into(),
        }
    }
}

/// The fields of `/proc/PID/stat` the sensor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields are
/// counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<i64>().ok());
    Some(Stat {
        ppid: u32::try_from(n(4)?).ok()?,
        utime: n(14)?.max(0) as u64,
        stime: n(15)?.max(0) as u64,
        cutime: n(16)?.max(0) as u64,
        cstime: n(17)?.max(0) as u64,
    })
}

impl Proc {
    pub fn at(root: impl Into<std::path::PathBuf>) -> Proc {
        Proc { root: root.into() }
    }

    fn stat(&self, pid: u32) -> Option<Stat> {
        parse_stat(&fs::read_to_string(self.root.join(pid.to_string()).join("stat")).ok()?)
    }

    /// Run time in ns of the live threads of `pid`, if the kernel shows it.
    fn threads_ns(&self, pid: u32) -> Option<u64> {
        let tasks = self.root.join(pid.to_string()).join("task");
        let mut sum = 0u64;
        let mut any = false;
        for t in fs::read_dir(&tasks).ok()?.flatten() {
            let Ok(s) = fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = s
                .split_ascii_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                sum += ns;
                any = true;
            }
        }
        any.then_some(sum)
    }

    /// The children of `pid` (through every thread's `children` file; by a
    /// scan of `/proc` where the kernel does not have those files).
    fn children(&self, pid: u32) -> Vec<u32> {
        let tasks = self.root.join(pid.to_string()).join("task");
        let mut out = Vec::new();
        let mut had_file = false;
        if let Ok(rd) = fs::read_dir(&tasks) {
            for t in rd.flatten() {
                if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                    had_file = true;
                    out.extend(
                        s.split_ascii_whitespace()
                            .filter_map(|v| v.parse::<u32>().ok()),
                    );
                }
            }
        }
        if !had_file {
            out = self.scan_children(pid);
        }
        out
    }

    fn scan_children(&self, pid: u32) -> Vec<u32> {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| self.stat(*p).is_some_and(|s| s.ppid == pid))
            .collect()
    }

    /// The parent of process `pid`, if `/proc` shows it.
    pub fn ppid(&self, pid: u32) -> Option<u32> {
        self.stat(pid).map(|s| s.ppid)
    }

    /// Whether process `pid` exists (and is not a zombie).
    pub fn alive(&self, pid: u32) -> bool {
        fs::read_to_string(self.root.join(pid.to_string()).join("stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_ascii_whitespace()
                    .next()
                    .map(|st| st != "Z" && st != "X")
            })
            .unwrap_or(false)
    }

    /// Reads the CPU time of `root` and its descendants; `None` when `root`
    /// is gone.
    pub fn read_tree(&self, root: u32) -> Option<Reading> {
        let mut r = Reading::default();
        let mut todo = vec![root];
        let mut seen = 0usize;
        while let Some(pid) = todo.pop() {
            seen += 1;
            if seen > 4096 {
                break;
            }
            let Some(st) = self.stat(pid) else {
                if pid == root {
                    return None;
                }
                continue;
            };
            let own_ticks = st.utime + st.stime;
            let reaped_ticks = st.cutime + st.cstime;
            r.ticks_ns += (own_ticks + reaped_ticks) * NS_PER_TICK;
            r.precise_ns += self.threads_ns(pid).unwrap_or(own_ticks * NS_PER_TICK)
                + reaped_ticks * NS_PER_TICK;
            r.processes += 1;
            todo.extend(self.children(pid));
        }
        Some(r)
    }
}

/// Whether `path` looks like a `/proc` (for a clear log line when it does not).
pub fn proc_available(p: &Path) -> bool {
    p.join("self").join("stat").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line = "4242 (py) thon (x)) S 7 4242 4242 0 -1 4194560 1 0 0 0 12 5 3 4 20 0 1 0 9 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 7,
                utime: 12,
                stime: 5,
                cutime: 3,
                cstime: 4
            }
        );
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S 0 1").is_none());
    }

    fn write_proc(
        dir: &Path,
        pid: u32,
        ppid: u32,
        ticks: (u64, u64, u64, u64),
        threads: &[u64],
        children: &[u32],
    ) {
        let p = dir.join(pid.to_string());
        fs::create_dir_all(p.join("task")).unwrap();
        fs::write(
            p.join("stat"),
            format!(
                "{pid} (p) S {ppid} 1 1 0 -1 0 0 0 0 0 {} {} {} {} 20 0 1 0 9 0 0",
                ticks.0, ticks.1, ticks.2, ticks.3
            ),
        )
        .unwrap();
        for (i, ns) in threads.iter().enumerate() {
            let t = p.join("task").join((pid + i as u32).to_string());
            fs::create_dir_all(&t).unwrap();
            fs::write(t.join("schedstat"), format!("{ns} 0 0\n")).unwrap();
            let kids: Vec<String> = if i == 0 {
                children.iter().map(|c| c.to_string()).collect()
            } else {
                vec![]
            };
            fs::write(t.join("children"), kids.join(" ")).unwrap();
        }
    }

    #[test]
    fn sums_a_tree_precisely_and_falls_back_to_ticks_when_threads_ended() {
        let d = tempfile::tempdir().unwrap();
        let proc_ = Proc::at(d.path());
        write_proc(
            d.path(),
            100,
            1,
            (10, 5, 0, 0),
            &[120_000_000, 30_000_000],
            &[200],
        );
        write_proc(d.path(), 200, 100, (2, 0, 0, 0), &[21_000_000], &[]);
        // Unrelated: not counted.
        write_proc(d.path(), 300, 1, (999, 0, 0, 0), &[9_990_000_000], &[]);
        let a = proc_.read_tree(100).unwrap();
        assert_eq!(a.processes, 2);
        assert_eq!(a.precise_ns, 171_000_000);
        assert_eq!(a.ticks_ns, 170_000_000);
        // The child ran 4 ms more and was reaped into the parent's cutime
        // (1 tick); the parent's main thread ran 7.5 ms more.
        write_proc(
            d.path(),
            100,
            1,
            (11, 5, 3, 0),
            &[127_500_000, 30_000_000],
            &[],
        );
        fs::remove_dir_all(d.path().join("200")).unwrap();
        let b = proc_.read_tree(100).unwrap();
        assert_eq!(b.processes, 1);
        // precise: 157.5 ms + 30 ms (3 reaped ticks) = 187.5 ms; delta 16.5 ms.
        assert_eq!(b.ms_since(&a), 16.5);
        // A thread ended with 80 ms run time: the ticks show it, the threads no longer do.
        write_proc(d.path(), 100, 1, (20, 5, 3, 0), &[127_500_000], &[]);
        let c = proc_.read_tree(100).unwrap();
        assert_eq!(c.ms_since(&b), 90.0);
        assert!(proc_.read_tree(999).is_none());
    }
}
