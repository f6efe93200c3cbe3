//! `cargo fuzz run request_handlers`: see `ringkv_server::fuzz::request_handlers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringkv_server::fuzz::request_handlers(data));
