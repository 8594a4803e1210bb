//! What the system says about the server process and the machine (`/proc`, `ss`).

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// What `/proc` says about a process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct ProcStats {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
    /// utime + stime, seconds (USER_HZ = 100).
    pub(crate) cpu_secs: f64,
}

impl ProcStats {
    pub(crate) fn read(pid: u32) -> ProcStats {
        let mut s = ProcStats::default();
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                let kib = |l: &str| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("VmRSS:") {
                    s.rss_kib = kib(line);
                } else if line.starts_with("VmHWM:") {
                    s.hwm_kib = kib(line);
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the command name (which may hold spaces) start at field 3.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                // utime is field 14, stime 15; `rest` starts at field 3.
                s.cpu_secs = (tick(11) + tick(12)) as f64 / 100.0;
            }
        }
        s
    }
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU pressure (`/proc/pressure/cpu`, "some" line: share of time some runnable task waited
/// for a CPU, averaged over 10 s and 60 s): how much other work competed for the cores.
pub(crate) fn cpu_pressure() -> String {
    std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .map(|l| {
            l.split_whitespace()
                .filter(|f| f.starts_with("avg10=") || f.starts_with("avg60="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes received and sent by the server's established sockets on the client API port, from
/// `ss -tin` (`bytes_received`, `bytes_acked`), or `None` if `ss` is not available.
pub(crate) fn socket_bytes(url: &str) -> Option<(u64, u64)> {
    let port = url.rsplit(':').next()?;
    let out = Command::new("ss")
        .args(["-tinH", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = |key: &str| -> u64 {
        text.split_whitespace()
            .filter_map(|f| f.strip_prefix(key))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    Some((sum("bytes_received:"), sum("bytes_acked:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stats_of_this_process() {
        let s = ProcStats::read(std::process::id());
        assert!(s.rss_kib > 0);
        assert!(s.hwm_kib >= s.rss_kib);
        assert!(s.cpu_secs >= 0.0);
        // A process that does not exist reads as zeros, not a panic.
        let none = ProcStats::read(u32::MAX);
        assert_eq!(none.rss_kib, 0);
    }
}
