//! What each node gossips for purging (the `purge` key): the instant no content of its
//! hints is older than, and the ring version it last cleaned up after. A purge waits until
//! every member reports both past what the key needs (see `workers::purge`); a member that
//! gossips no report (down, or a release before purging) blocks it.

/// One node's purge report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// No hint the node holds, or delivered within the purge delay, has content older than
    /// this instant (milliseconds since the Unix epoch, by its clock); 0 until its first
    /// handoff round since it started.
    pub hints_since_ms: u64,
    /// The ring version after whose settling it deleted the copies it no longer owns.
    pub cleaned: u64,
}

impl PurgeReport {
    /// The gossiped form: `hints_since_ms:cleaned`.
    pub(crate) fn to_key(self) -> String {
        format!("{}:{}", self.hints_since_ms, self.cleaned)
    }

    /// The inverse of [`PurgeReport::to_key`]; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<PurgeReport> {
        let (since, cleaned) = text.split_once(':')?;
        Some(PurgeReport {
            hints_since_ms: since.parse().ok()?,
            cleaned: cleaned.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_gossiped_form_and_garbage_is_no_report() {
        let report = PurgeReport {
            hints_since_ms: 1_764_000_000_123,
            cleaned: 7,
        };
        assert_eq!(PurgeReport::parse(&report.to_key()), Some(report));
        for bad in ["", "12", "a:1", "1:b", "1:2:3", "-1:2"] {
            assert_eq!(PurgeReport::parse(bad), None, "{bad:?}");
        }
    }
}
