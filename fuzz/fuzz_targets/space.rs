//! cargo-fuzz target: see `harness::space`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    freqrex_fuzz::space(data);
});
