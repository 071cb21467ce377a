//! A target's CPU time and memory, read from /proc: utime + stime of the process (every
//! thread), VmRSS now and VmHWM, the kernel's own record of the peak resident set, so a peak
//! between two samples is not missed. Read before the process is stopped: the figures vanish
//! with it.

use crate::error::BenchError;

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_kb: u64,
    pub peak_rss_kb: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn parse_stat(stat: &str) -> Option<f64> {
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn sample(pid: i32) -> Result<ProcSample, BenchError> {
    let read = |what: &str| {
        let path = format!("/proc/{pid}/{what}");
        std::fs::read_to_string(&path).map_err(|e| BenchError::io(format!("reading {path}"), e))
    };
    let stat = read("stat")?;
    let status = read("status")?;
    let bad = |what: &str| BenchError::Plan(format!("/proc/{pid}/{what}: unexpected format"));
    Ok(ProcSample {
        cpu_secs: parse_stat(&stat).ok_or_else(|| bad("stat"))?,
        rss_kb: status_kb(&status, "VmRSS:").ok_or_else(|| bad("status VmRSS"))?,
        peak_rss_kb: status_kb(&status, "VmHWM:").ok_or_else(|| bad("status VmHWM"))?,
    })
}
