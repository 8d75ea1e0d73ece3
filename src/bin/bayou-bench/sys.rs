//! What the harness reads from the operating system: a clock shared by every process on the
//! machine, the server's CPU time and memory from `/proc/<pid>`, and the harness's own CPU time.

/// Microseconds on `CLOCK_MONOTONIC`: one clock for every process on the machine, so a
/// timestamp written by a publisher process can be compared with a subscriber process's clock.
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// CPU time of every thread of `pid`, in microseconds: the sum of the nanosecond run times
/// in `/proc/<pid>/task/*/schedstat` when the kernel keeps them (a short run needs better
/// than the 10 ms ticks of `stat`), else user + system time from `/proc/<pid>/stat`.
/// A thread that exits between two readings takes its time with it; servers keep theirs.
pub fn process_cpu_us(pid: u32) -> Option<u64> {
    schedstat_us(pid).or_else(|| stat_cpu_us(pid))
}

fn schedstat_us(pid: u32) -> Option<u64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns / 1_000)
}

/// User plus system time from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
pub fn stat_cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|ticks| ticks * 1_000_000 / clock_ticks_per_sec())
}

/// utime + stime in ticks; the command name in field 2 may hold spaces, so fields are counted
/// from its closing parenthesis.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rusage_us(who: libc::c_int) -> u64 {
    // SAFETY: an all-zero rusage is valid and getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0;
    }
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// CPU time used by this process so far (user + system), in microseconds.
pub fn self_cpu_us() -> u64 {
    rusage_us(libc::RUSAGE_SELF)
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    // SAFETY: an all-zero rlimit is valid; get/setrlimit only read and write it.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(280));
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(process_cpu_us(me).is_some());
        assert!(stat_cpu_us(me).is_some());
        assert!(rss_kib(me).unwrap_or(0) > 0);
        assert!(now_us() > 0);
    }
}
