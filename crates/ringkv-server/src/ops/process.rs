//! The process's own figures for `/metrics`, under the names every Prometheus dashboard
//! knows (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), and
//! `ringkv_build_info`: read from `/proc/self` at scrape time (Linux; elsewhere only the
//! build's figure is served).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use ringkv_core::wire::PROTOCOL_VERSION;

/// The figures of one scrape.
#[derive(Debug, Default)]
pub struct ProcessSnapshot {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: i64,
    start_time_seconds: i64,
    threads: i64,
}

impl ProcessSnapshot {
    /// Reads `/proc/self`; what cannot be read stays 0.
    pub fn read() -> ProcessSnapshot {
        let mut snapshot = ProcessSnapshot::default();
        // Clock ticks: 100 on every Linux this runs on (sysconf would need libc). The resident
        // size is read from `status` below; pages of 4 KiB are only its fallback.
        const TICKS: f64 = 100.0;
        const PAGE: i64 = 4096;
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            // The command name (field 2) may hold spaces: fields are counted after its ')'.
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
            let (utime, stime) = (field(14).unwrap_or(0), field(15).unwrap_or(0));
            snapshot.cpu_seconds = (utime + stime) as f64 / TICKS;
            snapshot.threads = field(20).unwrap_or(0);
            snapshot.virtual_bytes = field(23).unwrap_or(0);
            snapshot.resident_bytes = field(24).unwrap_or(0) * PAGE;
            if let Some(boot) = boot_time() {
                snapshot.start_time_seconds = boot + field(22).unwrap_or(0) / TICKS as i64;
            }
        }
        // The kernel's own figure, whatever the page size.
        if let Ok(status) = std::fs::read_to_string("/proc/self/status")
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        {
            snapshot.resident_bytes = kib * 1024;
        }
        // Less the descriptor the listing itself holds open.
        snapshot.open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|dir| dir.count() as i64 - 1)
            .unwrap_or(0);
        snapshot
    }
}

/// When the machine booted, in seconds since the Unix epoch.
fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

impl Collector for ProcessSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cpu = ConstCounter::new(self.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time the process spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory of the process, in bytes",
                self.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory of the process, in bytes",
                self.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors of the process",
                self.open_fds,
            ),
            (
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch",
                self.start_time_seconds,
            ),
            ("process_threads", "Threads of the process", self.threads),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        // `ringkv_build_info{version, protocol} 1`: which release a node runs, for a
        // dashboard's upgrade panel.
        let labels = [
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("protocol", PROTOCOL_VERSION.to_string()),
        ];
        let info = ConstGauge::new(1i64);
        let mut family = encoder.encode_descriptor(
            "ringkv_build_info",
            "The release this node runs (always 1; the labels say which)",
            None,
            info.metric_type(),
        )?;
        info.encode(family.encode_family(&labels)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ProcessSnapshot;

    /// On Linux (where nodes run) every figure is read, and plausible.
    #[test]
    fn the_process_figures_are_read_from_proc() {
        let s = ProcessSnapshot::read();
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.virtual_bytes >= s.resident_bytes, "{s:?}");
        assert!(s.open_fds >= 3 && s.threads >= 1, "{s:?}");
        // Started after 2020 and not in the future.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        assert!(s.start_time_seconds > 1_577_836_800, "{s:?}");
        assert!(s.start_time_seconds <= now + 1, "{s:?}");
        assert!(s.cpu_seconds >= 0.0);
    }
}
