//! cargo-fuzz target: see `harness::synthesis`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    freqrex_fuzz::synthesis(data);
});
