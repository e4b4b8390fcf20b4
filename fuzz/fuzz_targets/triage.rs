#![no_main]
//! libFuzzer target: see [`checks::triage`].

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(
    // The first call compiles triage's regexes (over 1 s with ASan on a busy
    // host): not the first input's time.
    init: checks::triage(b""),
    |data: &[u8]| checks::triage(data)
);
