//! What the harness reads from /proc: CPU time of a relay (a process tree or the engine's worker
//! threads in this process), RSS, open fds, io-wq threads, and the machine's description.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Clock ticks per second for /proc stat fields.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime (+ cutime + cstime when `children`) of a `/proc/.../stat` file, in ticks.
fn stat_ticks(path: &Path, children: bool) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised comm (which may hold spaces): state is field 3.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 of stat, i.e. index 11 after "state"; stime 12, cutime 13, cstime 14.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let mut t = num(11) + num(12);
    if children {
        t += num(13) + num(14);
    }
    Some(t)
}

fn ticks(t: u64) -> Duration {
    Duration::from_secs_f64(t as f64 / ticks_per_sec())
}

/// `pid` and its live descendants (bounded: a relay tree here is at most a few thousand
/// processes, socat forking one per connection).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if out.len() >= 100_000 {
            break;
        }
        out.push(p);
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                    stack.extend(c.split_whitespace().filter_map(|v| v.parse::<u32>().ok()));
                }
            }
        }
    }
    out
}

/// [`resources`] summed over `pid` and its descendants (nginx workers, socat's forks).
pub fn tree_resources(pid: u32) -> Resources {
    process_tree(pid)
        .into_iter()
        .map(|p| resources(&p.to_string()))
        .fold(Resources::default(), |a, b| Resources {
            rss_bytes: a.rss_bytes + b.rss_bytes,
            fds: a.fds + b.fds,
            iou_wrk_threads: a.iou_wrk_threads + b.iou_wrk_threads,
        })
}

/// CPU time of process `pid` and all its live descendants, plus what its reaped children used.
pub fn process_tree_cpu(pid: u32) -> Duration {
    let total = process_tree(pid)
        .into_iter()
        .map(|p| stat_ticks(Path::new(&format!("/proc/{p}/stat")), true).unwrap_or(0))
        .sum();
    ticks(total)
}

/// CPU time of this process's threads whose name starts with one of `prefixes`.
pub fn own_threads_cpu(prefixes: &[&str]) -> Duration {
    let mut total = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if prefixes.iter().any(|p| comm.starts_with(p)) {
                total += stat_ticks(&t.path().join("stat"), false).unwrap_or(0);
            }
        }
    }
    ticks(total)
}

/// Threads of process `pid` (or `self`) whose name starts with `prefix`.
pub fn threads_named(pid: &str, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Resident set size of `pid` (or `self`), in bytes.
pub fn rss_bytes(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Open file descriptors of `pid` (or `self`).
pub fn open_fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A resource probe of the relay at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// RSS in bytes.
    pub rss_bytes: u64,
    /// Open fds.
    pub fds: usize,
    /// `iou-wrk-*` io-wq kernel threads.
    pub iou_wrk_threads: usize,
}

/// Probes `pid` (or `self`).
pub fn resources(pid: &str) -> Resources {
    Resources {
        rss_bytes: rss_bytes(pid),
        fds: open_fds(pid),
        iou_wrk_threads: threads_named(pid, "iou-wrk"),
    }
}

/// The machine and build a report was measured on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `uname -r`.
    pub kernel: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: usize,
    /// `git rev-parse --short HEAD` of the tree, if known.
    pub commit: String,
    /// Whether the tree had uncommitted changes.
    pub dirty: bool,
    /// RLIMIT_NOFILE soft limit.
    pub nofile_limit: u64,
    /// Versions of the baselines found.
    pub baselines: Vec<String>,
}

/// Describes this machine.
pub fn environment() -> Environment {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Environment {
        kernel,
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        commit,
        dirty,
        nofile_limit: nofile_limit(),
        baselines: Vec::new(),
    }
}

/// The RLIMIT_NOFILE soft limit.
pub fn nofile_limit() -> u64 {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) } == 0 {
        cur.rlim_cur
    } else {
        0
    }
}

/// Raises the RLIMIT_NOFILE soft limit to the hard limit; returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct; soft <= hard is always allowed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) == 0 {
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &cur);
        }
    }
    nofile_limit()
}

/// RSS of `pid` (or `self`) by kind of mapping, in bytes: `heap` (brk), `stack`, `anon`
/// (anonymous mmaps: malloc arenas of other threads, thread stacks, io_uring rings) and `file`.
pub fn rss_by_kind(pid: &str) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut kind = "anon";
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(first) = parts.next() else { continue };
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let path = parts.nth(4).unwrap_or("");
            kind = match path {
                "" => "anon",
                "[heap]" => "heap",
                p if p.starts_with("[stack") => "stack",
                p if p.starts_with('[') => "anon",
                _ => "file",
            };
        } else if first == "Rss:" {
            let kib: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *out.entry(kind.to_owned()).or_insert(0) += kib * 1024;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_visible() {
        let r = resources("self");
        assert!(r.rss_bytes > 0 && r.fds > 0, "{r:?}");
        let me = std::process::id();
        // Burn a little CPU so the tree's time is measurably positive.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(process_tree_cpu(me) > Duration::ZERO);
        assert!(!environment().kernel.is_empty());
        let kinds = rss_by_kind("self");
        assert!(kinds.values().sum::<u64>() > 0, "{kinds:?}");
    }
}
