use super::state::{parse_layout_key, parse_report_key};
use super::*;

#[test]
fn gossip_keys_round_trip_and_garbage_is_ignored() {
    let layout = Layout::default();
    assert_eq!(
        parse_layout_key(&layout_key(layout.rank())),
        Some(layout.rank())
    );
    for report in [(7, Step::Streamed), (9, Step::Switched)] {
        assert_eq!(parse_report_key(&report_key(Some(report))), Some(report));
    }
    assert_eq!(parse_report_key(""), None);
    assert_eq!(parse_report_key("7:flying"), None);
    assert_eq!(parse_layout_key("x:y"), None);
}
