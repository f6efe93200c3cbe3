//! CPU time of processes, from `/proc/<pid>/stat`, to put a price on each operation.
//!
//! `utime + stime` include every thread, live or exited. They count in clock ticks of
//! `USER_HZ`, which Linux fixes at 100 for user space on every architecture it runs on.

use std::time::Duration;

const USER_HZ: u64 = 100;

/// CPU time (user + system) `pid` has used so far; `None` if it is gone or unreadable.
pub fn process_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its `)`.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Sum of [`process_time`] over `pids` (missing ones count 0).
pub fn total_time(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|pid| process_time(*pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let me = std::process::id();
        let before = process_time(me).expect("own /proc stat");
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = process_time(me).expect("own /proc stat");
        assert!(
            after >= before + Duration::from_millis(150),
            "{before:?} -> {after:?}"
        );
        assert_eq!(process_time(u32::MAX), None);
    }
}
