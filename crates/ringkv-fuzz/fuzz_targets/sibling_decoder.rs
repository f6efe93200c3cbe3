//! `cargo fuzz run sibling_decoder`: see `ringkv_server::fuzz::sibling_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringkv_server::fuzz::sibling_decoder(data));
