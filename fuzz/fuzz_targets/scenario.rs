#![no_main]
//! libFuzzer target: see [`checks::scenario`].

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(
    init: checks::Fixture::for_process(),
    |data: &[u8]| checks::scenario(checks::Fixture::for_process(), data)
);
