#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pullgate_fuzz::token_scope(data));
