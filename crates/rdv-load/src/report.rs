//! Progress on stderr, percentiles, and the report on stdout (text or JSON).

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Res;

/// A progress line on stderr, with the time since the start.
pub(crate) fn log(msg: impl AsRef<str>) {
    eprintln!("[rdv-load {:>8.1?}] {}", started().elapsed(), msg.as_ref());
}

/// When the tool started (the first call).
pub(crate) fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Nearest-rank percentiles, milliseconds.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// The percentiles of `v` (all zero when it is empty).
pub(crate) fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// MiB from KiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints `report` on stdout: JSON, or one `key: value` per line.
pub(crate) fn print_report<T: Serialize + std::fmt::Debug>(json: bool, report: &T) -> Res<()> {
    let text = if json {
        serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
    } else {
        // A readable listing: one `key: value` per line.
        let value = serde_json::to_value(report).map_err(|e| e.to_string())?;
        let mut out = String::new();
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                out.push_str(&format!("{k:<28} {v}\n"));
            }
        }
        out
    };
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{text}").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(v);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        let one = percentiles(vec![Duration::from_millis(7)]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(percentiles(Vec::new()).max, 0.0);
    }
}
