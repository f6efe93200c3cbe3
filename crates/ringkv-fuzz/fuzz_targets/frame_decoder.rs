//! `cargo fuzz run frame_decoder`: see `ringkv_server::fuzz::frame_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringkv_server::fuzz::frame_decoder(data));
