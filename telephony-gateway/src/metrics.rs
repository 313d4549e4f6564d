//! Metric names and descriptions (Prometheus via the `metrics` facade; the binary installs
//! the recorder). Labels never carry personal data.

pub(crate) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "regula_telephony_calls_offered_total",
        "Calls accepted into the queue, by channel."
    );
    describe_counter!(
        "regula_telephony_calls_answered_total",
        "Calls connected to an operator position, by channel."
    );
    describe_counter!(
        "regula_telephony_calls_abandoned_total",
        "Calls the caller ended while waiting, by channel."
    );
    describe_counter!(
        "regula_telephony_calls_rejected_overload_total",
        "Calls refused with 503 because the queue or the core was full, by reason."
    );
    describe_histogram!(
        "regula_telephony_queue_wait_seconds",
        Unit::Seconds,
        "Time from offer to answer or abandonment."
    );
    describe_gauge!(
        "regula_telephony_queue_depth",
        "Calls waiting for an operator."
    );
    describe_counter!(
        "regula_sip_parse_errors_total",
        "SIP messages refused by the parser, by kind."
    );
    describe_counter!(
        "regula_sip_refused_total",
        "Refusals at the SIP door, by reason: not_a_trunk and digest_failed (403), \
         source_limit (503, one non-trunk address's waiting calls), tcp_per_peer_limit and \
         tcp_connection_limit (connection closed at accept), tcp_idle and \
         tcp_keepalive_limit (connection closed), stream_too_large and stream_framing \
         (bytes without a complete message within max_message_bytes, or lost framing)."
    );
    describe_counter!(
        "regula_sip_digest_challenges_total",
        "401 digest challenges sent to trunks."
    );
    describe_gauge!("regula_sip_tcp_connections", "Open SIP TCP connections.");
    describe_counter!(
        "regula_telephony_calls_overflowed_total",
        "Calls unanswered after max_queue_secs, handed back to the carrier, by outcome \
         (redirected: 302 to overflow_uri; unavailable: 480)."
    );
    describe_histogram!(
        "regula_sip_invite_to_offered_seconds",
        Unit::Seconds,
        "Time from an INVITE's arrival to its Offered event on the core's channel."
    );
}
