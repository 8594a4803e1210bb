//! A `perf record` of the server during the timed phase (`--perf`).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::Res;

pub(crate) fn start_perf(pid: u32, out: &Path, call_graph: &str, freq: u32) -> Res<Child> {
    let log_path = out.with_extension("log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    // cpu-clock: this KVM guest has no hardware counters.
    Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F"])
        .arg(freq.to_string())
        .arg("--call-graph")
        .arg(call_graph)
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot run perf: {e}"))
}

pub(crate) fn stop_perf(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
