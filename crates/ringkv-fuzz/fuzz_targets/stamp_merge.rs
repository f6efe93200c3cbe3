//! `cargo fuzz run stamp_merge`: see `ringkv_server::fuzz::stamp_merge`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringkv_server::fuzz::stamp_merge(data));
