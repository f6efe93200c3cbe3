//! Small formatting helpers shared by the commands.

use ringkv_core::{SiblingSet, VersionVector};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `1.5 MiB`, `812 B`: sizes as an operator reads them.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `{ed14.3f0a:3, 9ebc:1}`: a version vector with each actor's node id cut to its first four
/// digits, then its epoch's first four (none for the legacy epoch 0).
pub fn version_vector(vv: &VersionVector) -> String {
    let parts: Vec<String> = vv
        .iter()
        .map(|(actor, counter)| {
            let node = &actor.node.to_string()[..4];
            if actor.epoch == 0 {
                format!("{node}:{counter}")
            } else {
                let epoch = format!("{:016x}", actor.epoch);
                format!("{node}.{}:{counter}", &epoch[..4])
            }
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The live values of a state, each cut to a readable length.
pub fn values(state: &SiblingSet) -> Vec<String> {
    state
        .live()
        .filter_map(|s| s.value.as_ref())
        .map(|v| {
            let text = String::from_utf8_lossy(v);
            if text.chars().count() > 40 {
                format!("{}…", text.chars().take(40).collect::<String>())
            } else {
                text.into_owned()
            }
        })
        .collect()
}

/// A progress bar of `width` cells for `done` out of `total`.
pub fn bar(done: u64, total: u64, width: usize) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_read_right() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(bar(1, 4, 8), "[##------]");
        assert_eq!(bar(9, 4, 4), "[####]", "overshoot is clamped");
        assert_eq!(bar(0, 0, 2), "[##]", "nothing to do is done");
    }
}
