#![no_main]
//! libFuzzer target: see [`checks::protocol`].

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::protocol(data));
