//! Who is calling: `P-Asserted-Identity` (RFC 3325, asserted by the carrier's network)
//! preferred over `From` (claimed by the device); both kept. The asserted identity is
//! read only from a source inside the trust domain — a trunk configured with
//! `trust_asserted_identity` — because anyone else can write the header; from other
//! sources it is ignored and the caller is who `From` claims. Anonymous callers
//! (`anonymous@anonymous.invalid`, `Privacy: id`) are flagged, and the asserted identity
//! is still kept for the emergency service, which is a trusted recipient (RFC 3325 §9.1).

use dispatch_core::intake::CallerIdentity;
use dispatch_core::privacy::Sensitive;

use crate::sip::{HeaderLookup, HeaderName, NameAddr, Request, Scheme};

/// Longest identity kept, in characters.
const MAX_IDENTITY_CHARS: usize = 256;

/// The caller's identity as a request states it. `P-Asserted-Identity` is read only when
/// `trust_asserted` (the request came from a trusted trunk); a malformed one is ignored
/// (the call goes on with the claimed identity).
pub fn caller_identity(request: &Request, trust_asserted: bool) -> CallerIdentity {
    let asserted: Vec<NameAddr> = if trust_asserted {
        request
            .header_values(&HeaderName::PAssertedIdentity)
            .filter_map(|v| NameAddr::parse_list(v).ok())
            .flatten()
            .collect()
    } else {
        Vec::new()
    };
    // A tel: URI is the callback number; prefer it when both forms are asserted.
    let best_asserted = asserted
        .iter()
        .find(|a| *a.uri.scheme() == Scheme::Tel)
        .or_else(|| asserted.first())
        .filter(|a| !a.uri.is_anonymous());
    let from = &request.core.from;
    let privacy: Vec<String> = request
        .header_values(&HeaderName::Privacy)
        .flat_map(|v| v.split([';', ',']))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let withheld = privacy
        .iter()
        .any(|p| p == "id" || p == "user" || p == "header");
    let from_anonymous = from.uri.is_anonymous()
        || from
            .display_name
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("anonymous"));
    let display = best_asserted
        .and_then(|a| a.display_name.clone())
        .or_else(|| from.display_name.clone())
        .filter(|d| !d.eq_ignore_ascii_case("anonymous") && !d.is_empty());
    CallerIdentity {
        asserted: best_asserted.map(|a| sensitive(a.uri.as_str())),
        claimed: (!from.uri.is_anonymous()).then(|| sensitive(from.uri.as_str())),
        display_name: display.map(|d| sensitive(&d)),
        anonymous: withheld || from_anonymous,
    }
}

fn sensitive(text: &str) -> Sensitive<String> {
    Sensitive::new(
        text.chars()
            .filter(|c| !c.is_control())
            .take(MAX_IDENTITY_CHARS)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Limits, Message, parse_datagram};

    fn invite(from: &str, extra: &str) -> Request {
        let text = format!(
            "INVITE urn:service:sos SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: {from};tag=1\r\nTo: <urn:service:sos>\r\nCall-ID: id@192.0.2.1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn asserted_identity_is_preferred_and_both_are_kept() {
        let r = invite(
            "\"Spoofed\" <sip:1234@device.example>",
            "P-Asserted-Identity: \"Juana Pérez\" <sip:+573001234567@carrier.example;user=phone>, <tel:+573001234567>\r\n",
        );
        let id = caller_identity(&r, true);
        assert_eq!(id.asserted.unwrap().expose(), "tel:+573001234567");
        assert_eq!(id.claimed.unwrap().expose(), "sip:1234@device.example");
        assert_eq!(id.display_name.unwrap().expose(), "Spoofed");
        assert!(!id.anonymous);
    }

    #[test]
    fn anonymous_callers_are_flagged_and_the_network_identity_kept() {
        let r = invite(
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            "Privacy: id\r\nP-Asserted-Identity: <sip:+5716001234@carrier.example>\r\n",
        );
        let id = caller_identity(&r, true);
        assert!(id.anonymous);
        assert!(id.claimed.is_none());
        assert!(id.display_name.is_none());
        assert_eq!(
            id.asserted.unwrap().expose(),
            "sip:+5716001234@carrier.example"
        );

        let privacy_only = invite(
            "<sip:+573001234567@carrier.example>",
            "Privacy: header;id\r\n",
        );
        assert!(caller_identity(&privacy_only, true).anonymous);
    }

    #[test]
    fn an_asserted_identity_from_an_untrusted_source_is_ignored() {
        let r = invite(
            "\"Juana\" <sip:+573001234567@carrier.example>",
            "P-Asserted-Identity: <tel:+5716009999>\r\n",
        );
        let id = caller_identity(&r, false);
        assert!(id.asserted.is_none());
        assert_eq!(
            id.best().unwrap().expose(),
            "sip:+573001234567@carrier.example"
        );
        assert_eq!(id.display_name.unwrap().expose(), "Juana");
    }

    #[test]
    fn a_malformed_asserted_identity_is_ignored() {
        let r = invite(
            "<sip:+573001234567@carrier.example>",
            "P-Asserted-Identity: \"unterminated <sip:x@y>\r\n",
        );
        let id = caller_identity(&r, true);
        assert!(id.asserted.is_none());
        assert_eq!(
            id.claimed.unwrap().expose(),
            "sip:+573001234567@carrier.example"
        );
    }
}
