//! cargo-fuzz target: see `harness::engine`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    freqrex_fuzz::engine(data);
});
