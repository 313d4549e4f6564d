//! URIs as SIP carries them: strict `sip:`/`sips:` (RFC 3261 §19.1), and a generic check
//! for every other scheme (`tel:`, `urn:service:sos`, unknown schemes in From/To).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::text::percent_decode;

/// A URI's scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:` (accepted in headers; the gateway does not speak TLS)
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// `urn:` (RFC 8141; `urn:service:sos` is the emergency service URN of RFC 5031)
    Urn,
    /// Anything else, lower-cased.
    Other(String),
}

/// The host part of a SIP URI or a Via `sent-by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower-cased.
    Name(String),
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A parsed `sip:`/`sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// User part, still escaped as written.
    pub user: Option<String>,
    /// Host.
    pub host: Host,
    /// Port, if written.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp`, `;lr`), names lower-cased.
    pub params: Vec<(String, Option<String>)>,
    /// Whether the URI carries `?headers`.
    pub has_headers: bool,
}

impl SipUri {
    /// The value of a URI parameter (case-insensitive name).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

/// A validated URI: the text as written plus what the gateway needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    raw: String,
    scheme: Scheme,
    sip: Option<SipUri>,
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("no scheme")]
    NoScheme,
    /// Characters that cannot appear in a URI (white space, controls, `<>"`).
    #[error("forbidden character in URI")]
    ForbiddenCharacter,
    /// A malformed `%HH` escape.
    #[error("malformed escape")]
    BadEscape,
    /// `sip:` URI without a valid host.
    #[error("bad host")]
    BadHost,
    /// Port not a number in 0–65535.
    #[error("bad port")]
    BadPort,
    /// Empty or malformed parameter.
    #[error("bad URI parameter")]
    BadParameter,
    /// Malformed user part.
    #[error("bad user part")]
    BadUser,
    /// Nothing after the scheme.
    #[error("empty URI")]
    Empty,
}

impl Uri {
    /// Validates a URI.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        if text
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b"<>\"".contains(&b))
        {
            return Err(UriError::ForbiddenCharacter);
        }
        let (scheme_text, rest) = text.split_once(':').ok_or(UriError::NoScheme)?;
        let valid_scheme = scheme_text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !valid_scheme {
            return Err(UriError::NoScheme);
        }
        if rest.is_empty() {
            return Err(UriError::Empty);
        }
        if percent_decode(rest).is_none() {
            return Err(UriError::BadEscape);
        }
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            "urn" => Scheme::Urn,
            other => Scheme::Other(other.to_owned()),
        };
        let sip = match scheme {
            Scheme::Sip | Scheme::Sips => Some(parse_sip(rest)?),
            Scheme::Urn => {
                // urn:NID:NSS
                let (nid, nss) = rest.split_once(':').ok_or(UriError::Empty)?;
                if nid.is_empty() || nss.is_empty() {
                    return Err(UriError::Empty);
                }
                None
            }
            _ => None,
        };
        Ok(Self {
            raw: text.to_owned(),
            scheme,
            sip,
        })
    }

    /// The URI as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Its scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The parsed form of a `sip:`/`sips:` URI.
    pub fn sip(&self) -> Option<&SipUri> {
        self.sip.as_ref()
    }

    /// `anonymous@anonymous.invalid` (RFC 3323) or the user `anonymous` at any host.
    pub fn is_anonymous(&self) -> bool {
        self.sip.as_ref().is_some_and(|s| {
            s.user
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
                || matches!(&s.host, Host::Name(h) if h == "anonymous.invalid")
        })
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

fn parse_sip(rest: &str) -> Result<SipUri, UriError> {
    let (before_headers, headers) = match rest.split_once('?') {
        Some((a, h)) => (a, Some(h)),
        None => (rest, None),
    };
    // The user part may itself contain ';' and '?', but never an unescaped '@'.
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            if userinfo.contains('@') {
                return Err(UriError::BadUser);
            }
            (Some(userinfo), &rest[at + 1..])
        }
        None => (None, before_headers),
    };
    let (hostpart, headers) = if userinfo.is_some() {
        match hostpart.split_once('?') {
            Some((a, h)) => (a, Some(h)),
            None => (hostpart, None),
        }
    } else {
        (hostpart, headers)
    };
    let user = match userinfo {
        Some(info) => {
            let user = info.split_once(':').map_or(info, |(u, _)| u);
            let ok = !user.is_empty()
                && info
                    .bytes()
                    .all(|b| is_unreserved(b) || b"%&=+$,;?/:".contains(&b));
            if !ok {
                return Err(UriError::BadUser);
            }
            Some(user.to_owned())
        }
        None => None,
    };
    let mut pieces = hostpart.split(';');
    let host_and_port = pieces.next().unwrap_or_default();
    let (host, port) = parse_hostport(host_and_port)?;
    let mut params = Vec::new();
    for piece in pieces {
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (piece, None),
        };
        let paramchar = |b: u8| is_unreserved(b) || b"[]/:&+$%".contains(&b);
        if name.is_empty() || !name.bytes().all(paramchar) {
            return Err(UriError::BadParameter);
        }
        if let Some(v) = value
            && (v.is_empty() || !v.bytes().all(paramchar))
        {
            return Err(UriError::BadParameter);
        }
        params.push((name.to_ascii_lowercase(), value.map(str::to_owned)));
    }
    if let Some(h) = headers
        && (h.is_empty()
            || !h
                .split('&')
                .all(|kv| kv.split_once('=').is_some_and(|(n, _)| !n.is_empty())))
    {
        return Err(UriError::BadParameter);
    }
    Ok(SipUri {
        user,
        host,
        port,
        params,
        has_headers: headers.is_some(),
    })
}

/// Parses `host[:port]` (IPv6 in brackets).
pub(crate) fn parse_hostport(text: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host_text, port_text) = if let Some(stripped) = text.strip_prefix('[') {
        let close = stripped.find(']').ok_or(UriError::BadHost)?;
        let after = &stripped[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UriError::BadHost),
        };
        let ip: Ipv6Addr = stripped[..close].parse().map_err(|_| UriError::BadHost)?;
        return Ok((Host::Ip(IpAddr::V6(ip)), parse_port(port)?));
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = parse_port(port_text)?;
    Ok((parse_host(host_text)?, port))
}

fn parse_port(text: Option<&str>) -> Result<Option<u16>, UriError> {
    match text {
        None => Ok(None),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map(Some).map_err(|_| UriError::BadPort)
        }
        Some(_) => Err(UriError::BadPort),
    }
}

fn parse_host(text: &str) -> Result<Host, UriError> {
    if text.is_empty() {
        return Err(UriError::BadHost);
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ip: Ipv4Addr = text.parse().map_err(|_| UriError::BadHost)?;
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    let top_ok = name
        .rsplit('.')
        .next()
        .and_then(|l| l.bytes().next())
        .is_some_and(|b| b.is_ascii_alphabetic());
    if labels_ok && top_ok {
        Ok(Host::Name(text.to_ascii_lowercase()))
    } else {
        Err(UriError::BadHost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris_with_unusual_but_legal_parts_are_accepted() {
        let uri = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(
            uri.sip().unwrap().user.as_deref(),
            Some("user;par=u%40example.net")
        );
        let uri = Uri::parse("sip:vivekg@chair-dnrc.example.com;unknownparam").unwrap();
        assert_eq!(uri.sip().unwrap().param("unknownparam"), Some(None));
        let uri = Uri::parse("sip:[2001:db8::10]:5070;transport=tcp").unwrap();
        assert_eq!(uri.sip().unwrap().port, Some(5070));
        assert_eq!(uri.sip().unwrap().param("transport"), Some(Some("tcp")));
        assert!(Uri::parse("sip:null-%00-null@example.com").is_ok());
        assert!(Uri::parse("urn:service:sos").is_ok());
        assert!(Uri::parse("tel:+5716001234").is_ok());
        assert!(Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").is_ok());
    }

    #[test]
    fn malformed_uris_are_refused_with_the_reason() {
        assert_eq!(
            Uri::parse("<sip:a@b>").unwrap_err(),
            UriError::ForbiddenCharacter
        );
        assert_eq!(
            Uri::parse("sip:a@b c").unwrap_err(),
            UriError::ForbiddenCharacter
        );
        assert_eq!(Uri::parse("sip:a@").unwrap_err(), UriError::BadHost);
        assert_eq!(
            Uri::parse("sip:a@host:99999").unwrap_err(),
            UriError::BadPort
        );
        assert_eq!(
            Uri::parse("sip:a@host;;lr").unwrap_err(),
            UriError::BadParameter
        );
        assert_eq!(Uri::parse("sip:a@b@c").unwrap_err(), UriError::BadUser);
        assert_eq!(Uri::parse("sip:a%zz@b").unwrap_err(), UriError::BadEscape);
        assert_eq!(Uri::parse("nocolon").unwrap_err(), UriError::NoScheme);
        assert_eq!(Uri::parse("urn:service").unwrap_err(), UriError::Empty);
    }

    #[test]
    fn anonymous_uris_are_recognised() {
        assert!(
            Uri::parse("sip:anonymous@anonymous.invalid")
                .unwrap()
                .is_anonymous()
        );
        assert!(
            Uri::parse("sip:Anonymous@carrier.co")
                .unwrap()
                .is_anonymous()
        );
        assert!(
            !Uri::parse("sip:+573001234567@carrier.co")
                .unwrap()
                .is_anonymous()
        );
    }
}
