//! The telephony door of Regula: a SIP user agent server (UDP and TCP) and a signed webhook
//! intake that turn emergency calls into [`dispatch_core::intake::CallEvent`]s, with the
//! caller's identity and PIDF-LO location, and route taken calls to operator positions.
//!
//! # Layout
//!
//! - [`sip`]: the strict parser (our validation layer against RFC 4475-style input), typed
//!   header values, URIs and the message writer. Pure.
//! - [`location`]: `Geolocation` (RFC 6442), multipart bodies and the PIDF-LO reader
//!   (RFC 4119/5491/5139). Pure.
//! - [`identity`]: `P-Asserted-Identity` over `From`, anonymous callers. Pure.
//! - [`gateway`]: [`SipGateway::start`] → [`GatewayHandle`]: transactions, the queue,
//!   connecting taken calls to operator positions (a signalling-only B2BUA), shutdown.
//! - [`webhook`]: `POST /telephony/calls` for cloud telephony providers (HMAC-signed).
//! - [`config`]: the `[sip]` settings.
//!
//! # Terms
//!
//! *Queue*: calls offered to the core and not yet taken by an operator; the caller hears
//! ringing meanwhile. *Operator position*: an operator's desk phone, reached by its SIP
//! URI. *Abandoned*: the caller hung up before an operator took the call. *Trunk*: a
//! carrier's interconnection, the addresses its calls come from. *Overflow*: a call
//! nobody took within `max_queue_secs`, handed back to the carrier (302 to a backup
//! centre, or 480).
//!
//! # Metrics
//!
//! `regula_telephony_calls_offered_total{channel}`, `…_answered_total{channel}`,
//! `…_abandoned_total{channel}`, `…_overflowed_total{channel,outcome}`,
//! `…_rejected_overload_total{channel,reason}`,
//! `regula_telephony_queue_wait_seconds{outcome}`, `regula_telephony_queue_depth`,
//! `regula_sip_parse_errors_total{kind}`, `regula_sip_refused_total{reason}`,
//! `regula_sip_digest_challenges_total`, `regula_sip_tcp_connections`,
//! `regula_sip_invite_to_offered_seconds`,
//! `regula_webhook_requests_total{outcome}`.

pub mod config;
pub mod gateway;
pub mod identity;
pub mod location;
mod metrics;
pub mod sip;
mod transport;
pub mod webhook;

use std::fmt;
use std::time::Duration;

pub use config::SipConfig;
pub use gateway::{ConnectError, GatewayError, GatewayHandle, SipGateway};

/// `Server`/`User-Agent` header value.
pub const SERVER_NAME: &str = concat!("Regula/", env!("CARGO_PKG_VERSION"));

/// Monotonic time for telemetry only (latency histograms). The binary implements it with
/// its stopwatch; the gateway never reads a clock itself.
pub trait Monotonic: Send + Sync + fmt::Debug {
    /// Time elapsed since an arbitrary fixed start.
    fn elapsed(&self) -> Duration;
}
