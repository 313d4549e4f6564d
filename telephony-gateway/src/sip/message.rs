//! SIP messages: the strict parser (our validation layer) and the writer.
//!
//! The parser refuses what RFC 3261's grammar refuses, including what RFC 4475 lists as
//! torture cases to reject: extra spaces in the request line, `<>` around the
//! Request-URI, unterminated quotes, unquoted display names with commas, spaces inside
//! `<URI>`, empty parameters, overlarge scalars, `CSeq` methods that do not match, missing or
//! repeated mandatory header fields, negative or wrong Content-Length, NUL bytes, invalid
//! UTF-8 and bare line feeds. Valid oddities are accepted: line folding, compact header
//! names, any case, white space around separators, leading zeros, unknown headers and
//! parameters, escaped characters in URIs.

use std::fmt::{self, Write as _};

use super::header::{
    CSeq, Header, HeaderName, MediaType, NameAddr, ValueError, Via, bounded_number, valid_call_id,
};
use super::text::is_token;
use super::uri::{Uri, UriError};

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line, headers and body), in bytes.
    pub max_message_bytes: usize,
    /// Largest header field after unfolding, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_header_bytes: 8_192,
            max_headers: 128,
        }
    }
}

/// How the bytes arrived: a datagram holds one whole message; a stream needs
/// Content-Length to know where the message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// UDP.
    Datagram,
    /// TCP.
    Stream,
}

/// A request method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// `INVITE`
    Invite,
    /// `ACK`
    Ack,
    /// `BYE`
    Bye,
    /// `CANCEL`
    Cancel,
    /// `OPTIONS`
    Options,
    /// Any other token (REGISTER, INFO, `NEWMETHOD`, …).
    Other(String),
}

impl Method {
    /// From a token.
    pub fn from_token(token: &str) -> Self {
        match token {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Other(m) => m,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header fields every SIP message must carry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreHeaders {
    /// Via, top first.
    pub via: Vec<Via>,
    /// From.
    pub from: NameAddr,
    /// To.
    pub to: NameAddr,
    /// Call-ID.
    pub call_id: String,
    /// `CSeq`.
    pub cseq: CSeq,
    /// Max-Forwards, if present.
    pub max_forwards: Option<u8>,
    /// Content-Type, if present.
    pub content_type: Option<MediaType>,
    /// Contact values (empty if absent or `*`).
    pub contact: Vec<NameAddr>,
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// The mandatory header fields, parsed.
    pub core: CoreHeaders,
    /// Every header field in order (the core ones included), as received.
    pub headers: Vec<Header>,
    /// Body, exactly Content-Length bytes.
    pub body: Vec<u8>,
}

/// A validated response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100–699.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// The mandatory header fields, parsed.
    pub core: CoreHeaders,
    /// Every header field in order, as received.
    pub headers: Vec<Header>,
    /// Body.
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Finds header values by name.
pub trait HeaderLookup {
    /// All header fields.
    fn header_fields(&self) -> &[Header];

    /// Values of every field with this name, in order.
    fn header_values<'a>(
        &'a self,
        name: &HeaderName,
    ) -> impl Iterator<Item = &'a str> + use<'a, Self> {
        let name = name.clone();
        self.header_fields()
            .iter()
            .filter(move |h| header_matches(&h.name, &name))
            .map(|h| h.value.as_str())
    }

    /// The first value of a header field.
    fn header<'a>(&'a self, name: &HeaderName) -> Option<&'a str> {
        self.header_values(name).next()
    }
}

fn header_matches(a: &HeaderName, b: &HeaderName) -> bool {
    match (a, b) {
        (HeaderName::Other(x), HeaderName::Other(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

impl HeaderLookup for Request {
    fn header_fields(&self) -> &[Header] {
        &self.headers
    }
}

impl HeaderLookup for Response {
    fn header_fields(&self) -> &[Header] {
        &self.headers
    }
}

/// What went wrong, as a metrics label and a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Nothing that looks like a SIP start line.
    Unrecognisable,
    /// Header section is not UTF-8.
    InvalidUtf8,
    /// A NUL byte in the start line or headers.
    NulByte,
    /// A control character other than tab in the start line or headers.
    ControlCharacter,
    /// A line ends in a bare LF or CR.
    BareLineEnding,
    /// No blank line after the headers.
    MissingBlankLine,
    /// Request line not `Method SP Request-URI SP SIP/2.0`.
    BadRequestLine(&'static str),
    /// Request-URI malformed.
    BadRequestUri(UriError),
    /// Request-URI carries `?headers`.
    HeadersInRequestUri,
    /// Version other than 2.0.
    UnsupportedVersion,
    /// Status line malformed.
    BadStatusLine,
    /// Whole message over the limit.
    MessageTooLarge,
    /// One header field over the limit.
    HeaderTooLarge,
    /// Too many header fields.
    TooManyHeaders,
    /// A header line without a colon or with a bad name.
    BadHeaderLine,
    /// A continuation line before any header.
    BadFolding,
    /// A mandatory header is missing.
    MissingHeader(&'static str),
    /// A single-valued header appears more than once.
    DuplicateHeader(&'static str),
    /// A header's value is malformed.
    BadHeaderValue(&'static str, ValueError),
    /// `CSeq` method differs from the request method.
    CSeqMethodMismatch,
    /// Top Via lacks a branch.
    MissingBranch,
    /// Content-Length malformed or inconsistent with the bytes received.
    BadContentLength(&'static str),
}

impl ParseErrorKind {
    /// Short label for metrics (`regula_sip_parse_errors_total{kind=...}`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unrecognisable => "unrecognisable",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NulByte => "nul_byte",
            Self::ControlCharacter => "control_character",
            Self::BareLineEnding => "bare_line_ending",
            Self::MissingBlankLine => "missing_blank_line",
            Self::BadRequestLine(_) | Self::BadStatusLine => "bad_start_line",
            Self::BadRequestUri(_) | Self::HeadersInRequestUri => "bad_request_uri",
            Self::UnsupportedVersion => "unsupported_version",
            Self::MessageTooLarge | Self::HeaderTooLarge | Self::TooManyHeaders => "too_large",
            Self::BadHeaderLine | Self::BadFolding => "bad_header_line",
            Self::MissingHeader(_) | Self::MissingBranch => "missing_header",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::BadHeaderValue(..) => "bad_header_value",
            Self::CSeqMethodMismatch => "cseq_mismatch",
            Self::BadContentLength(_) => "bad_content_length",
        }
    }

    /// The status code to answer a request with.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedVersion => 505,
            Self::MessageTooLarge => 513,
            _ => 400,
        }
    }

    /// A specific reason phrase (UTF-8 text without CR/LF).
    pub fn reason(&self) -> String {
        match self {
            Self::Unrecognisable => "Unrecognisable Message".into(),
            Self::InvalidUtf8 => "Invalid UTF-8 In Header".into(),
            Self::NulByte => "NUL Byte In Header".into(),
            Self::ControlCharacter => "Control Character In Header".into(),
            Self::BareLineEnding => "Line Not Terminated By CRLF".into(),
            Self::MissingBlankLine => "Missing Blank Line After Headers".into(),
            Self::BadRequestLine(what) => format!("Malformed Request Line ({what})"),
            Self::BadRequestUri(e) => format!("Malformed Request-URI ({e})"),
            Self::HeadersInRequestUri => "Headers Not Allowed In Request-URI".into(),
            Self::UnsupportedVersion => "Version Not Supported".into(),
            Self::BadStatusLine => "Malformed Status Line".into(),
            Self::MessageTooLarge => "Message Too Large".into(),
            Self::HeaderTooLarge => "Header Field Too Large".into(),
            Self::TooManyHeaders => "Too Many Header Fields".into(),
            Self::BadHeaderLine => "Malformed Header Line".into(),
            Self::BadFolding => "Continuation Line Without Header".into(),
            Self::MissingHeader(name) => format!("Missing {name} Header"),
            Self::DuplicateHeader(name) => format!("Multiple {name} Headers"),
            Self::BadHeaderValue(name, e) => format!("Malformed {name} Header ({e})"),
            Self::CSeqMethodMismatch => "CSeq Method Does Not Match Request Method".into(),
            Self::MissingBranch => "Missing Via Branch".into(),
            Self::BadContentLength(what) => format!("Bad Content-Length ({what})"),
        }
    }
}

/// A message that could not be accepted, with what is needed to answer it (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Enough of the message to build a response, when it was a request with a Via.
    pub salvage: Option<Salvage>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.status(), self.kind.reason())
    }
}

impl std::error::Error for ParseError {}

/// Header lines recovered from a request that failed validation, to answer it with a
/// 4xx/5xx: the client matches the response by its Via branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvage {
    /// The request's method token, if readable.
    pub method: Option<String>,
    /// `(name, value)` of the Via, From, To, Call-ID and `CSeq` lines, as received.
    pub lines: Vec<(&'static str, String)>,
}

/// Is this datagram or stream prefix only a keep-alive (CRLF or CRLFCRLF, RFC 5626)?
pub fn is_keepalive(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| *b == b'\r' || *b == b'\n')
}

/// Parses one message from a datagram (UDP).
pub fn parse_datagram(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    parse(bytes, Framing::Datagram, limits)
}

/// Finds the length of the first complete message in a stream buffer. `Ok(None)` means
/// more bytes are needed. Leading CRLFs (keep-alives) are part of the message and count
/// toward `max_message_bytes`, so a peer cannot make a buffer grow without bound with them.
///
/// This scans the whole buffer on every call; a connection reading a stream uses
/// [`StreamFramer`](super::stream::StreamFramer), which scans each byte once.
pub fn stream_message_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let start = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let data = &buf[start..];
    let Some(head_end) = find(data, b"\r\n\r\n") else {
        if buf.len() > limits.max_message_bytes {
            return Err(ParseError {
                kind: ParseErrorKind::MessageTooLarge,
                salvage: salvage(data),
            });
        }
        return Ok(None);
    };
    let total = start.saturating_add(framed_length(data, head_end, limits)?);
    if total > limits.max_message_bytes {
        return Err(ParseError {
            kind: ParseErrorKind::MessageTooLarge,
            salvage: salvage(data),
        });
    }
    if buf.len() >= total {
        Ok(Some(total))
    } else {
        Ok(None)
    }
}

/// The length of a stream message whose header section ends at `head_end` (the offset of
/// its blank line in `data`): header section, blank line and `Content-Length` bytes of
/// body. Refuses a missing or unreadable `Content-Length` (framing would be lost) and a
/// message over `max_message_bytes`.
pub(super) fn framed_length(
    data: &[u8],
    head_end: usize,
    limits: &Limits,
) -> Result<usize, ParseError> {
    let head = &data[..head_end];
    let mut length = None;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let name = name.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = String::from_utf8_lossy(&line[colon + 1..]);
            let n = bounded_number(value.trim_matches([' ', '\t']), u64::MAX).map_err(|_| {
                ParseError {
                    kind: ParseErrorKind::BadContentLength("not a number"),
                    salvage: salvage(data),
                }
            })?;
            length = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
    }
    let Some(length) = length else {
        return Err(ParseError {
            kind: ParseErrorKind::MissingHeader("Content-Length"),
            salvage: salvage(data),
        });
    };
    let total = (head_end + 4).saturating_add(length);
    if total > limits.max_message_bytes {
        return Err(ParseError {
            kind: ParseErrorKind::MessageTooLarge,
            salvage: salvage(data),
        });
    }
    Ok(total)
}

/// Parses one complete message from a stream (TCP); `bytes` is exactly what
/// [`stream_message_len`] delimited.
pub fn parse_stream_message(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    parse(bytes, Framing::Stream, limits)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn fail<T>(kind: ParseErrorKind, bytes: &[u8]) -> Result<T, ParseError> {
    Err(ParseError {
        kind,
        salvage: salvage(bytes),
    })
}

/// The strict parser.
#[allow(clippy::too_many_lines)] // one linear pass, clearer unsplit
pub fn parse(bytes: &[u8], framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let skip = bytes
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let bytes = &bytes[skip..];
    if bytes.len() > limits.max_message_bytes {
        return fail(ParseErrorKind::MessageTooLarge, bytes);
    }
    let Some(head_end) = find(bytes, b"\r\n\r\n") else {
        // Tell a recognisable request without the blank line from garbage.
        let kind = if bytes.starts_with(b"SIP/") || looks_like_request(bytes) {
            ParseErrorKind::MissingBlankLine
        } else {
            ParseErrorKind::Unrecognisable
        };
        return fail(kind, bytes);
    };
    let head = &bytes[..head_end];
    let after_head = &bytes[head_end + 4..];
    if let Some(kind) = check_bytes(head) {
        return fail(kind, bytes);
    }
    let Ok(head_text) = std::str::from_utf8(head) else {
        return fail(ParseErrorKind::InvalidUtf8, bytes);
    };
    let mut lines = head_text.split("\r\n");
    let start_line = lines.next().unwrap_or_default();

    // Unfold and split header fields.
    let mut raw_headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let Some(last) = raw_headers.last_mut() else {
                return fail(ParseErrorKind::BadFolding, bytes);
            };
            last.1.push(' ');
            last.1.push_str(line.trim_matches([' ', '\t']));
        } else {
            let Some((name, value)) = line.split_once(':') else {
                return fail(ParseErrorKind::BadHeaderLine, bytes);
            };
            let name = name.trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return fail(ParseErrorKind::BadHeaderLine, bytes);
            }
            raw_headers.push((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()));
            if raw_headers.len() > limits.max_headers {
                return fail(ParseErrorKind::TooManyHeaders, bytes);
            }
        }
        if raw_headers
            .last()
            .is_some_and(|(n, v)| n.len() + v.len() > limits.max_header_bytes)
        {
            return fail(ParseErrorKind::HeaderTooLarge, bytes);
        }
    }
    let headers: Vec<Header> = raw_headers
        .into_iter()
        .map(|(name, value)| Header {
            name: HeaderName::parse(&name),
            value: value.trim_matches([' ', '\t']).to_owned(),
        })
        .collect();

    let is_response = start_line.starts_with("SIP/");
    let request_line = if is_response {
        None
    } else {
        Some(parse_request_line(start_line).or_else(|kind| fail(kind, bytes))?)
    };

    // Single-valued headers appear once.
    for (i, h) in headers.iter().enumerate() {
        if h.name.is_single() && headers[..i].iter().any(|o| o.name == h.name) {
            return fail(ParseErrorKind::DuplicateHeader(static_name(&h.name)), bytes);
        }
    }
    let body = body(&headers, after_head, framing).or_else(|kind| fail(kind, bytes))?;
    let core = core_headers(&headers).or_else(|kind| fail(kind, bytes))?;

    if let Some((method, uri)) = request_line {
        if core.cseq.method != method.as_str() {
            return fail(ParseErrorKind::CSeqMethodMismatch, bytes);
        }
        if core.via.first().and_then(Via::branch).is_none() {
            return fail(ParseErrorKind::MissingBranch, bytes);
        }
        Ok(Message::Request(Request {
            method,
            uri,
            core,
            headers,
            body,
        }))
    } else {
        let (status, reason) = parse_status_line(start_line).ok_or(ParseError {
            kind: ParseErrorKind::BadStatusLine,
            salvage: None,
        })?;
        Ok(Message::Response(Response {
            status,
            reason,
            core,
            headers,
            body,
        }))
    }
}

fn looks_like_request(bytes: &[u8]) -> bool {
    let line_end = bytes
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..line_end];
    line.ends_with(b"SIP/2.0") && line.first().is_some_and(u8::is_ascii_alphabetic)
}

/// NUL, controls and bare CR/LF in the header section.
fn check_bytes(head: &[u8]) -> Option<ParseErrorKind> {
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            0 => return Some(ParseErrorKind::NulByte),
            b'\r' => {
                if head.get(i + 1) != Some(&b'\n') {
                    return Some(ParseErrorKind::BareLineEnding);
                }
                i += 1;
            }
            b'\n' => return Some(ParseErrorKind::BareLineEnding),
            b'\t' => {}
            b if b < 0x20 || b == 0x7f => return Some(ParseErrorKind::ControlCharacter),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_request_line(line: &str) -> Result<(Method, Uri), ParseErrorKind> {
    let parts: Vec<&str> = line.split(' ').collect();
    if line.ends_with(' ') {
        return Err(ParseErrorKind::BadRequestLine("trailing space"));
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ParseErrorKind::BadRequestLine("extra space"));
    }
    if parts.len() != 3 {
        return Err(ParseErrorKind::BadRequestLine(
            "expected Method SP Request-URI SP SIP/2.0",
        ));
    }
    let (method, uri, version) = (parts[0], parts[1], parts[2]);
    if !is_token(method) {
        return Err(ParseErrorKind::BadRequestLine("method is not a token"));
    }
    check_version(version)?;
    if uri.starts_with('<') {
        return Err(ParseErrorKind::BadRequestLine("Request-URI enclosed in <>"));
    }
    let uri = Uri::parse(uri).map_err(ParseErrorKind::BadRequestUri)?;
    if uri.sip().is_some_and(|s| s.has_headers) {
        return Err(ParseErrorKind::HeadersInRequestUri);
    }
    Ok((Method::from_token(method), uri))
}

fn check_version(version: &str) -> Result<(), ParseErrorKind> {
    let Some((name, number)) = version.split_once('/') else {
        return Err(ParseErrorKind::BadRequestLine("malformed SIP version"));
    };
    let well_formed = name.eq_ignore_ascii_case("SIP")
        && number.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if !well_formed {
        return Err(ParseErrorKind::BadRequestLine("malformed SIP version"));
    }
    if number != "2.0" {
        return Err(ParseErrorKind::UnsupportedVersion);
    }
    Ok(())
}

fn parse_status_line(line: &str) -> Option<(u16, String)> {
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    (100..=699)
        .contains(&status)
        .then(|| (status, reason.to_owned()))
}

fn static_name(name: &HeaderName) -> &'static str {
    match name {
        HeaderName::From => "From",
        HeaderName::To => "To",
        HeaderName::CallId => "Call-ID",
        HeaderName::CSeq => "CSeq",
        HeaderName::MaxForwards => "Max-Forwards",
        HeaderName::ContentLength => "Content-Length",
        HeaderName::ContentType => "Content-Type",
        HeaderName::Expires => "Expires",
        HeaderName::Via => "Via",
        HeaderName::Contact => "Contact",
        _ => "header",
    }
}

fn body(headers: &[Header], after: &[u8], framing: Framing) -> Result<Vec<u8>, ParseErrorKind> {
    let declared = headers
        .iter()
        .find(|h| h.name == HeaderName::ContentLength)
        .map(|h| {
            if h.value.starts_with('-') {
                return Err(ParseErrorKind::BadContentLength("negative"));
            }
            bounded_number(&h.value, u64::MAX)
                .map_err(|_| ParseErrorKind::BadContentLength("not a number"))
        })
        .transpose()?;
    match (declared, framing) {
        (None, Framing::Stream) => Err(ParseErrorKind::MissingHeader("Content-Length")),
        (None, Framing::Datagram) => Ok(after.to_vec()),
        (Some(n), _) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > after.len() {
                return Err(ParseErrorKind::BadContentLength("larger than the message"));
            }
            // RFC 3261 §18.3: bytes past Content-Length in a datagram are discarded.
            Ok(after[..n].to_vec())
        }
    }
}

fn value_err(name: &'static str) -> impl Fn(ValueError) -> ParseErrorKind {
    move |e| ParseErrorKind::BadHeaderValue(name, e)
}

fn core_headers(headers: &[Header]) -> Result<CoreHeaders, ParseErrorKind> {
    let one = |name: HeaderName, label: &'static str| {
        headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
            .ok_or(ParseErrorKind::MissingHeader(label))
    };
    let mut via = Vec::new();
    for h in headers.iter().filter(|h| h.name == HeaderName::Via) {
        via.extend(Via::parse_list(&h.value).map_err(value_err("Via"))?);
    }
    if via.is_empty() {
        return Err(ParseErrorKind::MissingHeader("Via"));
    }
    let from = NameAddr::parse(one(HeaderName::From, "From")?).map_err(value_err("From"))?;
    let to = NameAddr::parse(one(HeaderName::To, "To")?).map_err(value_err("To"))?;
    let call_id = one(HeaderName::CallId, "Call-ID")?;
    if !valid_call_id(call_id) {
        return Err(ParseErrorKind::BadHeaderValue(
            "Call-ID",
            ValueError("not a word[@word]"),
        ));
    }
    let cseq = CSeq::parse(one(HeaderName::CSeq, "CSeq")?).map_err(value_err("CSeq"))?;
    let max_forwards = headers
        .iter()
        .find(|h| h.name == HeaderName::MaxForwards)
        .map(|h| {
            bounded_number(&h.value, 255)
                .map(|n| u8::try_from(n).unwrap_or(u8::MAX))
                .map_err(value_err("Max-Forwards"))
        })
        .transpose()?;
    if let Some(h) = headers.iter().find(|h| h.name == HeaderName::Expires) {
        bounded_number(&h.value, u64::from(u32::MAX)).map_err(value_err("Expires"))?;
    }
    let content_type = headers
        .iter()
        .find(|h| h.name == HeaderName::ContentType)
        .map(|h| MediaType::parse(&h.value).map_err(value_err("Content-Type")))
        .transpose()?;
    let mut contact = Vec::new();
    for h in headers.iter().filter(|h| h.name == HeaderName::Contact) {
        if h.value == "*" {
            continue;
        }
        let list = NameAddr::parse_list(&h.value).map_err(value_err("Contact"))?;
        for c in &list {
            if let Some(Some(expires)) = c.param("expires") {
                bounded_number(expires, u64::from(u32::MAX)).map_err(value_err("Contact"))?;
            }
        }
        contact.extend(list);
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        for h in headers.iter().filter(|h| h.name == name) {
            NameAddr::parse_list(&h.value).map_err(value_err(static_route(&name)))?;
        }
    }
    Ok(CoreHeaders {
        via,
        from,
        to,
        call_id: call_id.to_owned(),
        cseq,
        max_forwards,
        content_type,
        contact,
    })
}

fn static_route(name: &HeaderName) -> &'static str {
    if *name == HeaderName::Route {
        "Route"
    } else {
        "Record-Route"
    }
}

/// Recovers the lines needed to answer a broken request. Only readable, printable lines
/// are kept; `None` if the message is not a request or has no Via.
pub(super) fn salvage(bytes: &[u8]) -> Option<Salvage> {
    let head_len = find(bytes, b"\r\n\r\n")
        .unwrap_or(bytes.len())
        .min(16 * 1024);
    let head = &bytes[..head_len];
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next()?;
    if first.starts_with(b"SIP/") {
        return None;
    }
    let method_end = first.iter().position(|b| *b == b' ')?;
    let method = std::str::from_utf8(&first[..method_end])
        .ok()
        .filter(|m| is_token(m))
        .map(str::to_owned);
    // Unfold first, so that a folded Via still counts.
    let mut unfolded: Vec<Vec<u8>> = Vec::new();
    for line in lines {
        match (line.first(), unfolded.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => {
                last.push(b' ');
                last.extend_from_slice(line.trim_ascii_start());
            }
            _ => unfolded.push(line.to_vec()),
        }
    }
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for line in &unfolded {
        let Ok(text) = std::str::from_utf8(line) else {
            continue;
        };
        if text.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) || text.len() > 2048 {
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let canonical = match HeaderName::parse(name.trim_matches([' ', '\t'])) {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            _ => continue,
        };
        out.push((canonical, value.trim_matches([' ', '\t']).to_owned()));
    }
    let has_via = out.iter().any(|(n, v)| *n == "Via" && !v.is_empty());
    has_via.then_some(Salvage { method, lines: out })
}

// ------------------------------------------------------------------------------------
// Writing

/// Builds a message as bytes: start line, header fields, Content-Length, body.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    text: String,
    body: Vec<u8>,
}

impl MessageWriter {
    /// Starts a response.
    pub fn response(status: u16, reason: &str) -> Self {
        let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
        Self {
            text: format!("SIP/2.0 {status} {reason}\r\n"),
            body: Vec::new(),
        }
    }

    /// Starts a request.
    pub fn request(method: &Method, uri: &str) -> Self {
        Self {
            text: format!("{method} {uri} SIP/2.0\r\n"),
            body: Vec::new(),
        }
    }

    /// Adds a header field (CR/LF in the value are removed).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.text, "{name}: ");
        self.text
            .extend(value.chars().filter(|c| *c != '\r' && *c != '\n'));
        self.text.push_str("\r\n");
        self
    }

    /// Sets the body and its Content-Type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        self = self.header("Content-Type", content_type);
        self.body = body.to_vec();
        self
    }

    /// Finishes the message with Content-Length.
    pub fn finish(mut self) -> Vec<u8> {
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = self.text.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> String {
        text.replace('\n', "\r\n")
    }

    const BASIC: &str = "INVITE sip:sos@gw.example.co SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <urn:service:sos>
From: \"Juan\" <sip:+573001234567@carrier.co>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.carrier.co
CSeq: 314159 INVITE
Contact: <sip:+573001234567@192.0.2.1:5060>
Content-Length: 5

v=0
";

    #[test]
    fn a_plain_invite_is_parsed() {
        let Message::Request(r) =
            parse_datagram(req(BASIC).as_bytes(), &Limits::default()).unwrap()
        else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.as_str(), "sip:sos@gw.example.co");
        assert_eq!(r.core.from.tag(), Some("1928301774"));
        assert_eq!(r.core.cseq.number, 314_159);
        assert_eq!(r.core.max_forwards, Some(70));
        assert_eq!(r.body, b"v=0\r\n");
    }

    #[test]
    fn bytes_past_content_length_in_a_datagram_are_discarded() {
        let text = req(BASIC).replace("Content-Length: 5", "Content-Length: 0");
        let Message::Request(r) = parse_datagram(text.as_bytes(), &Limits::default()).unwrap()
        else {
            panic!()
        };
        assert!(r.body.is_empty());
    }

    #[test]
    fn each_defect_gets_its_own_reason() {
        let cases: Vec<(String, &str)> = vec![
            (
                req(BASIC).replace("INVITE sip", "INVITE  sip"),
                "Malformed Request Line (extra space)",
            ),
            (
                req(BASIC).replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS"),
                "CSeq Method Does Not Match Request Method",
            ),
            (
                req(BASIC).replace("Call-ID: a84b4c76e66710@pc33.carrier.co\r\n", ""),
                "Missing Call-ID Header",
            ),
            (
                req(BASIC).replace("Content-Length: 5", "Content-Length: 50"),
                "Bad Content-Length (larger than the message)",
            ),
            (
                req(BASIC).replace("Content-Length: 5", "Content-Length: -4"),
                "Bad Content-Length (negative)",
            ),
            (
                req(BASIC).replace("Max-Forwards: 70", "Max-Forwards: 300"),
                "Malformed Max-Forwards Header (number too large)",
            ),
            (
                req(BASIC).replace(
                    "To: <urn:service:sos>",
                    "To: <urn:service:sos>\r\nTo: <sip:x@y>",
                ),
                "Multiple To Headers",
            ),
            (
                req(BASIC).replace("carrier.co>;tag", "carrier.co>;;tag"),
                "Malformed From Header (empty parameter)",
            ),
            (
                req(BASIC).replace(";branch=z9hG4bK776asdhds", ""),
                "Missing Via Branch",
            ),
        ];
        for (text, reason) in cases {
            let e = parse_datagram(text.as_bytes(), &Limits::default()).unwrap_err();
            assert_eq!(e.kind.reason(), reason, "{text}");
            assert!(e.salvage.is_some(), "{reason}: answerable");
        }
    }

    #[test]
    fn version_other_than_two_gets_505() {
        let text = req(BASIC).replace(
            "sip:sos@gw.example.co SIP/2.0",
            "sip:sos@gw.example.co SIP/7.0",
        );
        let e = parse_datagram(text.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(e.kind.status(), 505);
    }

    #[test]
    fn garbage_is_unanswerable() {
        let e = parse_datagram(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            &Limits::default(),
        )
        .unwrap_err();
        assert!(e.salvage.is_none());
    }

    #[test]
    fn stream_framing_waits_for_the_whole_body() {
        let text = req(BASIC);
        let bytes = text.as_bytes();
        let limits = Limits::default();
        assert_eq!(stream_message_len(&bytes[..40], &limits).unwrap(), None);
        assert_eq!(
            stream_message_len(&bytes[..bytes.len() - 1], &limits).unwrap(),
            None
        );
        assert_eq!(
            stream_message_len(bytes, &limits).unwrap(),
            Some(bytes.len())
        );
        let mut two = bytes.to_vec();
        two.extend_from_slice(bytes);
        assert_eq!(
            stream_message_len(&two, &limits).unwrap(),
            Some(bytes.len())
        );
        let no_length = text.replace("Content-Length: 5\r\n", "");
        assert!(stream_message_len(no_length.as_bytes(), &limits).is_err());
    }

    #[test]
    fn writer_produces_parseable_messages() {
        let bytes = MessageWriter::request(&Method::Options, "sip:x@192.0.2.1")
            .header("Via", "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKabc")
            .header("From", "<sip:gw@192.0.2.2>;tag=1")
            .header("To", "<sip:x@192.0.2.1>")
            .header("Call-ID", "abc@192.0.2.2")
            .header("CSeq", "1 OPTIONS")
            .header("Subject", "hi\r\nInjected: yes")
            .finish();
        let Message::Request(r) = parse_datagram(&bytes, &Limits::default()).unwrap() else {
            panic!()
        };
        assert_eq!(r.method, Method::Options);
        assert!(r.header(&HeaderName::Other("Injected".into())).is_none());
    }
}
