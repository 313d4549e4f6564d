//! Typed values of the header fields the gateway relies on, parsed strictly.

use std::fmt;

use super::text::{Cursor, is_token, is_token_char, is_word_char, split_list};
use super::uri::{Host, Uri, parse_hostport};

/// Header field names the gateway knows, with their compact forms (RFC 3261 §7.3.3 and
/// the RFCs that define them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Max-Forwards`
    MaxForwards,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Contact` / `m`
    Contact,
    /// `Expires`
    Expires,
    /// `Require`
    Require,
    /// `Supported` / `k`
    Supported,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
    /// `P-Asserted-Identity` (RFC 3325)
    PAssertedIdentity,
    /// `Privacy` (RFC 3323)
    Privacy,
    /// `Geolocation` (RFC 6442)
    Geolocation,
    /// `Content-Encoding` / `e`
    ContentEncoding,
    /// `Subject` / `s`
    Subject,
    /// Any other header, as written.
    Other(String),
}

impl HeaderName {
    /// Recognises a header name (case-insensitive; compact forms too).
    pub fn parse(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "via" | "v" => Self::Via,
            "from" | "f" => Self::From,
            "to" | "t" => Self::To,
            "call-id" | "i" => Self::CallId,
            "cseq" => Self::CSeq,
            "max-forwards" => Self::MaxForwards,
            "content-length" | "l" => Self::ContentLength,
            "content-type" | "c" => Self::ContentType,
            "contact" | "m" => Self::Contact,
            "expires" => Self::Expires,
            "require" => Self::Require,
            "supported" | "k" => Self::Supported,
            "route" => Self::Route,
            "record-route" => Self::RecordRoute,
            "p-asserted-identity" => Self::PAssertedIdentity,
            "privacy" => Self::Privacy,
            "geolocation" => Self::Geolocation,
            "content-encoding" | "e" => Self::ContentEncoding,
            "subject" | "s" => Self::Subject,
            _ => Self::Other(name.to_owned()),
        }
    }

    /// The canonical long form.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Via => "Via",
            Self::From => "From",
            Self::To => "To",
            Self::CallId => "Call-ID",
            Self::CSeq => "CSeq",
            Self::MaxForwards => "Max-Forwards",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::Contact => "Contact",
            Self::Expires => "Expires",
            Self::Require => "Require",
            Self::Supported => "Supported",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::PAssertedIdentity => "P-Asserted-Identity",
            Self::Privacy => "Privacy",
            Self::Geolocation => "Geolocation",
            Self::ContentEncoding => "Content-Encoding",
            Self::Subject => "Subject",
            Self::Other(name) => name,
        }
    }

    /// Whether RFC 3261 allows at most one field of this name in a request.
    pub(crate) fn is_single(&self) -> bool {
        matches!(
            self,
            Self::From
                | Self::To
                | Self::CallId
                | Self::CSeq
                | Self::MaxForwards
                | Self::ContentLength
                | Self::ContentType
                | Self::Expires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field, unfolded, with surrounding white space removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its name.
    pub name: HeaderName,
    /// Its value.
    pub value: String,
}

/// Header parameters (`;tag=x;lr`), names lower-cased.
pub type Params = Vec<(String, Option<String>)>;

/// What is wrong with a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub &'static str);

fn err<T>(what: &'static str) -> Result<T, ValueError> {
    Err(ValueError(what))
}

/// Reads `*( SEMI generic-param )` to the end of the cursor.
fn params(c: &mut Cursor<'_>) -> Result<Params, ValueError> {
    let mut out = Vec::new();
    loop {
        c.skip_ws();
        if c.is_empty() {
            return Ok(out);
        }
        if !c.eat(b';') {
            return err("unexpected text after value");
        }
        c.skip_ws();
        let name = c.token();
        if name.is_empty() {
            return err("empty parameter");
        }
        let value = if c.eat_sep(b'=') {
            if c.peek() == Some(b'"') {
                Some(
                    c.quoted_string()
                        .ok_or(ValueError("unterminated quoted string"))?,
                )
            } else {
                // token / host (IPv6 references included)
                let v = c.take_while(|b| is_token_char(b) || b"[]:".contains(&b));
                if v.is_empty() {
                    return err("empty parameter value");
                }
                Some(v.to_owned())
            }
        } else {
            None
        };
        out.push((name.to_ascii_lowercase(), value));
    }
}

fn find_param<'p>(params: &'p Params, name: &str) -> Option<&'p Option<String>> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact,
/// P-Asserted-Identity, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters.
    pub params: Params,
}

impl NameAddr {
    /// Parses one `name-addr`/`addr-spec` with parameters.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let mut c = Cursor::new(value.trim_matches([' ', '\t']));
        let mut display_name = None;
        let uri_text;
        if c.peek() == Some(b'"') {
            display_name = Some(
                c.quoted_string()
                    .ok_or(ValueError("unterminated quoted string in display name"))?,
            );
            c.skip_ws();
            if !c.eat(b'<') {
                return err("display name not followed by <URI>");
            }
            uri_text = angle_uri(&mut c)?;
        } else if value.contains('<') {
            // *(token LWS) "<" addr-spec ">"
            let before = c.until(b'<').ok_or(ValueError("missing <"))?;
            let words: Vec<&str> = before
                .split([' ', '\t'])
                .filter(|w| !w.is_empty())
                .collect();
            if !words.iter().all(|w| is_token(w)) {
                return err("display name has characters that need quoting");
            }
            if !words.is_empty() {
                display_name = Some(words.join(" "));
            }
            c.eat(b'<');
            uri_text = angle_uri(&mut c)?;
        } else {
            // addr-spec: the URI ends at the first ';' (its own parameters would be
            // ambiguous; RFC 3261 §20.10 requires name-addr for those).
            uri_text = c.take_while(|b| b != b';' && b != b' ' && b != b'\t');
        }
        let uri = Uri::parse(uri_text).map_err(|_| ValueError("malformed URI"))?;
        let params = params(&mut c)?;
        Ok(Self {
            display_name,
            uri,
            params,
        })
    }

    /// Parses a comma-separated list of `name-addr`s.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, ValueError> {
        let parts = split_list(value).ok_or(ValueError("unbalanced quote or bracket"))?;
        parts
            .into_iter()
            .map(|p| {
                if p.is_empty() {
                    err("empty list element")
                } else {
                    Self::parse(p)
                }
            })
            .collect()
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").and_then(|v| v.as_deref())
    }

    /// A header parameter's value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name).map(|v| v.as_deref())
    }
}

/// Reads an addr-spec after `<` up to `>`; no white space allowed inside.
fn angle_uri<'a>(c: &mut Cursor<'a>) -> Result<&'a str, ValueError> {
    let inner = c.until(b'>').ok_or(ValueError("missing >"))?;
    c.eat(b'>');
    if inner.bytes().any(|b| b == b' ' || b == b'\t') {
        return err("white space inside <URI>");
    }
    Ok(inner)
}

/// One `via-parm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport (`UDP`, `TCP`, …), upper-cased.
    pub transport: String,
    /// `sent-by` host.
    pub host: Host,
    /// `sent-by` port.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, …).
    pub params: Params,
}

impl Via {
    /// Parses a Via header value into its `via-parm`s.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, ValueError> {
        let parts = split_list(value).ok_or(ValueError("unbalanced quote"))?;
        parts
            .into_iter()
            .map(|p| {
                if p.is_empty() {
                    err("empty Via element")
                } else {
                    Self::parse(p)
                }
            })
            .collect()
    }

    fn parse(value: &str) -> Result<Self, ValueError> {
        let mut c = Cursor::new(value);
        let name = c.token();
        if !name.eq_ignore_ascii_case("SIP") {
            return err("protocol is not SIP");
        }
        if !c.eat_sep(b'/') {
            return err("malformed sent-protocol");
        }
        let version = c.token();
        if version != "2.0" {
            return err("protocol version is not 2.0");
        }
        if !c.eat_sep(b'/') {
            return err("malformed sent-protocol");
        }
        let transport = c.token();
        if transport.is_empty() {
            return err("missing transport");
        }
        let transport = transport.to_ascii_uppercase();
        c.skip_ws();
        if c.peek().is_none() {
            return err("missing sent-by");
        }
        // sent-by = host [ COLON port ], LWS allowed around the colon.
        let host_text = if c.peek() == Some(b'[') {
            let h = c.until(b']').ok_or(ValueError("bad IPv6 reference"))?;
            c.eat(b']');
            format!("{h}]")
        } else {
            c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                .to_owned()
        };
        let port_text = if c.eat_sep(b':') {
            let p = c.take_while(|b| b.is_ascii_digit());
            Some(p.to_owned())
        } else {
            None
        };
        let hostport = match &port_text {
            Some(p) => format!("{host_text}:{p}"),
            None => host_text,
        };
        let (host, port) = parse_hostport(&hostport).map_err(|_| ValueError("bad sent-by"))?;
        let params = params(&mut c)?;
        for (name, value) in &params {
            let needs_value = matches!(name.as_str(), "branch" | "received" | "maddr" | "ttl");
            if needs_value && value.is_none() {
                return err("Via parameter without value");
            }
        }
        Ok(Self {
            transport,
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").and_then(|v| v.as_deref())
    }

    /// Whether `rport` (RFC 3581) was asked for.
    pub fn wants_rport(&self) -> bool {
        find_param(&self.params, "rport").is_some()
    }

    /// `host[:port]`, for transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// `CSeq: number method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31.
    pub number: u32,
    /// Method name as written (methods are case-sensitive).
    pub method: String,
}

impl CSeq {
    /// Parses a `CSeq` value.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let mut c = Cursor::new(value);
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return err("sequence number missing");
        }
        let number = bounded_number(digits, (1 << 31) - 1)
            .map_err(|_| ValueError("sequence number too large"))?;
        let before = c.rest().len();
        c.skip_ws();
        if c.rest().len() == before {
            return err("missing space before method");
        }
        let method = c.token();
        c.skip_ws();
        if method.is_empty() || !c.is_empty() {
            return err("malformed method");
        }
        Ok(Self {
            number: u32::try_from(number).unwrap_or(u32::MAX),
            method: method.to_owned(),
        })
    }
}

/// Reads `1*DIGIT` as an unsigned number no larger than `max`.
pub fn bounded_number(value: &str, max: u64) -> Result<u64, ValueError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return err("not a number");
    }
    let trimmed = value.trim_start_matches('0');
    if trimmed.len() > 19 {
        return err("number too large");
    }
    let n: u64 = if trimmed.is_empty() {
        0
    } else {
        trimmed
            .parse()
            .map_err(|_| ValueError("number too large"))?
    };
    if n > max {
        return err("number too large");
    }
    Ok(n)
}

/// Validates a Call-ID: `word [ "@" word ]`.
pub fn valid_call_id(value: &str) -> bool {
    let mut parts = value.splitn(2, '@');
    let word_ok = |w: &str| !w.is_empty() && w.bytes().all(is_word_char);
    parts.next().is_some_and(word_ok) && parts.next().is_none_or(word_ok)
}

/// `type/subtype;params` of Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower-cased.
    pub essence: String,
    /// Parameters (`boundary`, `charset`).
    pub params: Params,
}

impl MediaType {
    /// Parses a media type.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let mut c = Cursor::new(value.trim_matches([' ', '\t']));
        let ty = c.token();
        if ty.is_empty() || !c.eat_sep(b'/') {
            return err("malformed media type");
        }
        let sub = c.token();
        if sub.is_empty() {
            return err("malformed media type");
        }
        let params = params(&mut c)?;
        Ok(Self {
            essence: format!("{}/{}", ty.to_ascii_lowercase(), sub.to_ascii_lowercase()),
            params,
        })
    }

    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).and_then(|v| v.as_deref())
    }
}

/// A comma-separated list of tokens (Require, Supported, Privacy uses `;` too).
pub fn token_list(value: &str) -> Result<Vec<String>, ValueError> {
    let parts = split_list(value).ok_or(ValueError("unbalanced quote"))?;
    parts
        .into_iter()
        .map(|p| {
            if is_token(p) {
                Ok(p.to_owned())
            } else {
                err("not a token")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addrs_in_all_their_forms_are_read() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let b =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(b.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(b.tag(), Some("1918181833n"));
        let c = NameAddr::parse(r#""caller"<sip:caller@example.com>;tag=323"#).unwrap();
        assert_eq!(c.display_name.as_deref(), Some("caller"));
        let d = NameAddr::parse("Juan Perez <tel:+573001234567>").unwrap();
        assert_eq!(d.display_name.as_deref(), Some("Juan Perez"));
    }

    #[test]
    fn malformed_name_addrs_are_refused() {
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("sip:caller@example.net;;tag=134161461246").is_err());
        assert!(NameAddr::parse("<sip:a@b").is_err());
    }

    #[test]
    fn folded_via_with_lws_everywhere_is_read() {
        let vias = Via::parse_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        )
        .unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].transport, "TCP");
        assert_eq!(vias[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(vias[1].sent_by(), "192.168.255.111");
        assert!(Via::parse_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(Via::parse_list("SIP/7.0/UDP host;branch=z9hG4bK1").is_err());
        assert!(Via::parse_list("SIP/2.0/UDP host:70000;branch=z9hG4bK1").is_err());
    }

    #[test]
    fn cseq_numbers_and_methods_are_checked() {
        assert_eq!(
            CSeq::parse("0009 INVITE").unwrap(),
            CSeq {
                number: 9,
                method: "INVITE".into()
            }
        );
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert_eq!(
            CSeq::parse("00000000000002147483647 ACK").unwrap().number,
            2_147_483_647
        );
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("INVITE").is_err());
        assert!(CSeq::parse("1 INVITE extra").is_err());
    }

    #[test]
    fn call_ids_and_numbers_are_checked() {
        assert!(valid_call_id("wsinv.ndaksdj@192.0.2.1"));
        assert!(valid_call_id(
            r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#
        ));
        assert!(!valid_call_id("has space@x"));
        assert!(!valid_call_id("a@b@c"));
        assert!(!valid_call_id(""));
        assert_eq!(bounded_number("0068", 255).unwrap(), 68);
        assert!(bounded_number("300", 255).is_err());
        assert!(bounded_number("-1", 255).is_err());
        assert!(bounded_number("100000000000000000000000", u64::MAX).is_err());
    }
}
