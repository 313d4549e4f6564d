//! Character classes of RFC 3261 §25.1 and a small cursor over header values.
//!
//! Header values reach this module already unfolded (a CRLF followed by white space is
//! replaced by a single space), so linear white space here is only spaces and tabs.

/// `token` characters: alphanumerics and ``-.!%*_+`'~``.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// `word` characters (Call-ID): token characters plus `()<>:\"/[]?{}`.
pub(crate) fn is_word_char(b: u8) -> bool {
    is_token_char(b) || b"()<>:\\\"/[]?{}".contains(&b)
}

/// Is `text` a non-empty token?
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_char)
}

/// Space or horizontal tab.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A cursor over one (unfolded) header value.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_wsp) {
            self.pos += 1;
        }
    }

    /// Consumes `c` (after optional white space on both sides); false if absent.
    pub(crate) fn eat_sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes `c` exactly at the cursor.
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Takes the longest run of bytes satisfying `pred`.
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Takes a token (possibly empty).
    pub(crate) fn token(&mut self) -> &'a str {
        self.take_while(is_token_char)
    }

    /// Reads a quoted string starting at `"`; returns its content with quoted pairs
    /// resolved, or `None` if the string is not terminated or the cursor is not at `"`.
    pub(crate) fn quoted_string(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let bytes = self.text.as_bytes();
        let mut i = self.pos + 1;
        let mut out = Vec::new();
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    self.pos = i + 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    let next = *bytes.get(i + 1)?;
                    if next == b'\r' || next == b'\n' || next >= 0x80 {
                        return None;
                    }
                    out.push(next);
                    i += 2;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        None
    }

    /// Takes everything up to (not including) `c`, or `None` if `c` never comes.
    pub(crate) fn until(&mut self, c: u8) -> Option<&'a str> {
        let rest = self.rest();
        let idx = rest.bytes().position(|b| b == c)?;
        let out = &rest[..idx];
        self.pos += idx;
        Some(out)
    }
}

/// Splits a comma-separated header value into elements, honouring quoted strings and
/// `<...>`. Returns `None` on an unbalanced quote or bracket. Elements are trimmed; empty
/// elements are kept so that callers can reject them.
pub(crate) fn split_list(value: &str) -> Option<Vec<&str>> {
    let bytes = value.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quotes {
            match b {
                b'\\' => i += 1,
                b'"' => in_quotes = false,
                _ => {}
            }
        } else if in_angle {
            if b == b'>' {
                in_angle = false;
            }
        } else {
            match b {
                b'"' => in_quotes = true,
                b'<' => in_angle = true,
                b',' => {
                    parts.push(value[start..i].trim_matches([' ', '\t']));
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if in_quotes || in_angle {
        return None;
    }
    parts.push(value[start..].trim_matches([' ', '\t']));
    Some(parts)
}

/// Splits a header value at its first top-level comma: `(first element, rest starting at
/// the comma)`; the rest is empty when there is one element.
pub(crate) fn split_first_element(value: &str) -> (&str, &str) {
    let bytes = value.as_bytes();
    let (mut in_quotes, mut in_angle) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' if !in_angle => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b',' if !in_quotes && !in_angle => return (&value[..i], &value[i..]),
            _ => {}
        }
        i += 1;
    }
    (value, "")
}

/// Decodes `%HH` escapes; `None` if an escape is malformed.
pub(crate) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        let parts = split_list(r#""a, b" <sip:x@y;p=1,2>, <sip:z@w>"#).unwrap();
        assert_eq!(parts, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z@w>"]);
        assert_eq!(split_list("a,,b").unwrap(), vec!["a", "", "b"]);
        assert!(split_list(r#""unterminated, x"#).is_none());
        assert!(split_list("<sip:x@y").is_none());
    }

    #[test]
    fn quoted_strings_resolve_quoted_pairs() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" rest"#);
        assert_eq!(c.quoted_string().unwrap(), r#"J Rosenberg \""#);
        assert_eq!(c.rest(), " rest");
        assert!(Cursor::new(r#""open"#).quoted_string().is_none());
    }

    #[test]
    fn percent_escapes_are_checked() {
        assert_eq!(percent_decode("a%40b").unwrap(), b"a@b");
        assert!(percent_decode("a%4").is_none());
        assert!(percent_decode("a%zz").is_none());
    }
}
