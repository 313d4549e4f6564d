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
    describe_histogram!(
        "regula_sip_invite_to_offered_seconds",
        Unit::Seconds,
        "Time from an INVITE's arrival to its Offered event on the core's channel."
    );
}
