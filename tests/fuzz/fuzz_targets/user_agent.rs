#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pullgate_fuzz::user_agent(data));
