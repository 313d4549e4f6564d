//! The telephony door of Regula: a SIP user agent server (UDP and TCP) and a signed webhook
//! intake that turn emergency calls into [`dispatch_core::intake::CallEvent`]s, with the
//! caller's identity and PIDF-LO location, and route taken calls to operator positions.

pub mod identity;
pub mod location;
pub mod sip;
