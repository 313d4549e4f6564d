//! Any bytes through the PIDF-LO reader: nothing may panic, and a location it returns
//! is always valid (its point went through `maps::GeoPoint`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_gateway::location::read_pidf_lo;

fuzz_target!(|data: &[u8]| {
    if let Ok(location) = read_pidf_lo(data) {
        if let Some(p) = location.position {
            assert!(p.lat().is_finite() && p.lon().is_finite());
        }
        if let Some(r) = location.uncertainty {
            assert!(r.get() >= 0.0);
        }
    }
});
