#![no_main]
//! libFuzzer target: see [`checks::run_json`].

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(
    init: checks::Fixture::for_process(),
    |data: &[u8]| checks::run_json(checks::Fixture::for_process(), data)
);
