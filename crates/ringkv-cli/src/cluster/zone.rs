//! Zone labels on the command line.

use ringkv_core::node::validate_zone;

/// A zone as typed: `-` (or nothing) for none, else a label.
pub(super) fn parse(zone: &str) -> anyhow::Result<String> {
    let zone = if zone == "-" { "" } else { zone };
    validate_zone(zone).map_err(anyhow::Error::msg)?;
    Ok(zone.to_string())
}
