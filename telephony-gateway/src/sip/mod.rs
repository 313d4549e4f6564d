//! SIP on the wire: a strict parser (our validation layer), typed header values, URIs and
//! a message writer.
//!
//! We evaluated `rsip` 0.4 (used by `rsipstack`) and `ezk-sip-types` 0.6: both accept
//! many RFC 4475 torture messages that must be rejected (rsip accepted 10 of the 12 we
//! tried, among them `<>` around the Request-URI, negative Content-Length, unterminated
//! quotes and NUL bytes; ezk accepts doubled spaces in the request line), and neither
//! parses the emergency Request-URI `urn:service:sos` (RFC 5031) that NG112 networks
//! send. The parser here is small, allocation-light and refuses by construction what the
//! grammar refuses.

pub mod header;
pub mod message;
pub mod stream;
mod text;
pub mod uri;

pub use header::{CSeq, Header, HeaderName, MediaType, NameAddr, Via};
pub use message::{
    CoreHeaders, Framing, HeaderLookup, Limits, Message, MessageWriter, Method, ParseError,
    ParseErrorKind, Request, Response, Salvage, is_keepalive, parse_datagram, parse_stream_message,
    stream_message_len,
};
pub(crate) use text::split_first_element;
pub use uri::{Host, Scheme, SipUri, Uri, UriError};

/// Decodes `%HH` escapes (lossy; malformed escapes are kept as written).
pub(crate) fn percent_decoded(text: &str) -> String {
    text::percent_decode(text).map_or_else(
        || text.to_owned(),
        |b| String::from_utf8_lossy(&b).into_owned(),
    )
}

/// Trims spaces and tabs.
pub(crate) fn text_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}
