//! Any bytes through the SIP parser (datagram and stream framing), and whatever parses
//! through the identity and location readers: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telephony_gateway::identity::caller_identity;
use telephony_gateway::location::reported_location;
use telephony_gateway::sip::{
    Limits, Message, parse_datagram, parse_stream_message, stream_message_len,
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Message::Request(request)) = parse_datagram(data, &limits) {
        let _ = caller_identity(&request, true);
        let _ = caller_identity(&request, false);
        let _ = reported_location(&request);
    }
    if let Ok(Some(len)) = stream_message_len(data, &limits) {
        let _ = parse_stream_message(&data[..len], &limits);
    }
});
