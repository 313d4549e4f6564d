//! `multipart/mixed` bodies (RFC 2046) as SIP carries them: SDP beside a PIDF-LO.

use crate::sip::{MediaType, text_trim};

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `Content-Type`, if the part has one.
    pub content_type: Option<MediaType>,
    /// `Content-ID` without the angle brackets.
    pub content_id: Option<String>,
    /// The part's bytes.
    pub body: Vec<u8>,
}

/// Why a multipart body could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// No `boundary` parameter.
    #[error("multipart body without a boundary parameter")]
    NoBoundary,
    /// The boundary never appears.
    #[error("multipart body does not contain its boundary")]
    NoParts,
    /// No closing delimiter.
    #[error("multipart body is not terminated by its closing boundary")]
    Unterminated,
    /// A part's headers are malformed.
    #[error("multipart body part has malformed headers")]
    BadPartHeaders,
    /// Too many parts.
    #[error("multipart body has more than {MAX_PARTS} parts")]
    TooManyParts,
}

const MAX_PARTS: usize = 16;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Splits a multipart body.
pub fn split(content_type: &MediaType, body: &[u8]) -> Result<Vec<Part>, MultipartError> {
    let boundary = content_type
        .param("boundary")
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or(MultipartError::NoBoundary)?;
    let delimiter = format!("--{boundary}").into_bytes();
    // The first delimiter may start the body or follow a preamble and CRLF.
    let first = if body.starts_with(&delimiter) {
        0
    } else {
        let mut with_crlf = b"\r\n".to_vec();
        with_crlf.extend_from_slice(&delimiter);
        find(body, &with_crlf, 0).ok_or(MultipartError::NoParts)? + 2
    };
    let mut next_delim = b"\r\n".to_vec();
    next_delim.extend_from_slice(&delimiter);
    let mut parts = Vec::new();
    let mut pos = first + delimiter.len();
    loop {
        if body[pos..].starts_with(b"--") {
            return if parts.is_empty() {
                Err(MultipartError::NoParts)
            } else {
                Ok(parts)
            };
        }
        // Transport padding then CRLF after the delimiter.
        while body.get(pos).is_some_and(|b| *b == b' ' || *b == b'\t') {
            pos += 1;
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err(MultipartError::BadPartHeaders);
        }
        pos += 2;
        let end = find(body, &next_delim, pos).ok_or(MultipartError::Unterminated)?;
        parts.push(part(&body[pos..end])?);
        if parts.len() > MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        pos = end + next_delim.len();
    }
}

fn part(bytes: &[u8]) -> Result<Part, MultipartError> {
    let (head, body) = if bytes.starts_with(b"\r\n") {
        (&b""[..], &bytes[2..])
    } else {
        let split = find(bytes, b"\r\n\r\n", 0).ok_or(MultipartError::BadPartHeaders)?;
        (&bytes[..split], &bytes[split + 4..])
    };
    let head = std::str::from_utf8(head).map_err(|_| MultipartError::BadPartHeaders)?;
    let mut content_type = None;
    let mut content_id = None;
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(MultipartError::BadPartHeaders)?;
        let value = text_trim(value);
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" | "c" => {
                content_type =
                    Some(MediaType::parse(value).map_err(|_| MultipartError::BadPartHeaders)?);
            }
            "content-id" => {
                let id = value
                    .strip_prefix('<')
                    .and_then(|v| v.strip_suffix('>'))
                    .unwrap_or(value);
                content_id = Some(id.to_owned());
            }
            _ => {}
        }
    }
    Ok(Part {
        content_type,
        content_id,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> MediaType {
        MediaType::parse("multipart/mixed; boundary=boundary1").unwrap()
    }

    #[test]
    fn sdp_and_pidf_parts_are_split() {
        let body = b"preamble\r\n--boundary1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--boundary1\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc@carrier.example>\r\n\r\n<presence/>\r\n--boundary1--\r\n";
        let parts = split(&mixed(), body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"v=0\r\n");
        assert_eq!(parts[1].content_id.as_deref(), Some("loc@carrier.example"));
        assert_eq!(
            parts[1].content_type.as_ref().unwrap().essence,
            "application/pidf+xml"
        );
        assert_eq!(parts[1].body, b"<presence/>");
    }

    #[test]
    fn broken_multipart_bodies_are_refused() {
        let no_boundary = MediaType::parse("multipart/mixed").unwrap();
        assert_eq!(
            split(&no_boundary, b"x").unwrap_err(),
            MultipartError::NoBoundary
        );
        assert_eq!(
            split(&mixed(), b"nothing here").unwrap_err(),
            MultipartError::NoParts
        );
        assert_eq!(
            split(
                &mixed(),
                b"--boundary1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
            )
            .unwrap_err(),
            MultipartError::Unterminated
        );
        assert_eq!(
            split(&mixed(), b"--boundary1--\r\n").unwrap_err(),
            MultipartError::NoParts
        );
        let many = "--boundary1\r\n\r\nx\r\n".repeat(20) + "--boundary1--";
        assert_eq!(
            split(&mixed(), many.as_bytes()).unwrap_err(),
            MultipartError::TooManyParts
        );
    }
}
