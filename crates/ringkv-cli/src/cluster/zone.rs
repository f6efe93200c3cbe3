//! Zone labels on the command line, and the check that every member can take them.

use anyhow::bail;
use ringkv_core::Layout;
use ringkv_core::node::validate_zone;
use ringkv_core::wire::ZONES_PROTOCOL_VERSION;

use crate::admin::Admin;

/// A zone as typed: `-` (or nothing) for none, else a label.
pub(super) fn parse(zone: &str) -> anyhow::Result<String> {
    let zone = if zone == "-" { "" } else { zone };
    validate_zone(zone).map_err(anyhow::Error::msg)?;
    Ok(zone.to_string())
}

/// Refuses a zone label while a member (or the joining node at `joining`) runs a release that
/// does not know zones: it would drop the labels and place keys elsewhere (see
/// `ZONES_PROTOCOL_VERSION`). A member that does not answer cannot be vouched for either.
pub(super) async fn check_protocol(
    admin: &Admin,
    layout: &Layout,
    joining: Option<&str>,
) -> anyhow::Result<()> {
    let members = layout
        .members
        .iter()
        .chain(layout.transition.iter().flat_map(|t| &t.previous))
        .map(|m| (m.addr.as_str(), Some(m.id)));
    let mut checked: Vec<&str> = Vec::new();
    for (addr, id) in members.chain(joining.map(|a| (a, None))) {
        if checked.contains(&addr) {
            continue;
        }
        checked.push(addr);
        let name = id.map_or_else(|| addr.to_string(), |id| format!("{addr} (node {id})"));
        match admin.protocol_at(addr).await {
            Ok(version) if version >= ZONES_PROTOCOL_VERSION => {}
            Ok(version) => bail!(
                "{name} speaks protocol {version}; zones need {ZONES_PROTOCOL_VERSION} on every \
                 member: upgrade it first (a rolling restart), then label zones"
            ),
            Err(e) => bail!(
                "{name} does not answer ({e:#}), so its release is unknown; zones need protocol \
                 {ZONES_PROTOCOL_VERSION} on every member: bring it back, or `ringkv cluster \
                 remove` it if it is gone for good"
            ),
        }
    }
    Ok(())
}
