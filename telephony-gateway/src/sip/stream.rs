//! Framing a SIP byte stream (TCP) into messages, with bounded memory and linear work.
//!
//! RFC 3261 §7.5 lets CRLFs precede a start line, and RFC 5626 §4.4.1 uses them as
//! keep-alives: a double CRLF (`CRLFCRLF`) is a *ping*, answered with a single CRLF
//! *pong*. Both are legitimate, and both are also a way to stream bytes at a server that
//! never end a message. [`StreamFramer`] therefore counts every byte received since the
//! last complete message — CRLFs included — against `max_message_bytes`: a peer that
//! sends more than that without completing a message gets an error and is disconnected.
//!
//! Work is linear in the bytes received: leading CRLFs are counted and dropped as they
//! arrive (never buffered), the search for the end of the header section resumes where
//! the previous read stopped, and once the header section is complete its
//! `Content-Length` is read once.

use super::message::{Limits, ParseError, ParseErrorKind, framed_length, salvage};

/// What one read of the stream produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framed {
    /// Complete messages, in order (each exactly what [`super::parse_stream_message`]
    /// expects: leading CRLFs removed).
    pub messages: Vec<Vec<u8>>,
    /// RFC 5626 pings (`CRLFCRLF`) seen; each may be answered with one CRLF.
    pub pings: usize,
}

/// Splits a byte stream into SIP messages; one per connection.
#[derive(Debug)]
pub struct StreamFramer {
    limits: Limits,
    /// Bytes of the message in progress (never starts with CR or LF).
    buffer: Vec<u8>,
    /// CRLF bytes received since the last complete message (dropped, but counted).
    crlf_bytes: usize,
    /// The last CR/LF bytes received between messages, to recognise `CRLFCRLF`.
    crlf_window: u32,
    /// Where the search for the blank line resumes in `buffer`.
    scanned: usize,
    /// Length of the message in progress, once its header section is complete.
    length: Option<usize>,
}

const PING: u32 = u32::from_be_bytes(*b"\r\n\r\n");

impl StreamFramer {
    /// A framer for one connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buffer: Vec::new(),
            crlf_bytes: 0,
            crlf_window: 0,
            scanned: 0,
            length: None,
        }
    }

    /// Bytes received since the last complete message (CRLFs included): what counts
    /// toward `max_message_bytes`.
    pub fn pending_bytes(&self) -> usize {
        self.crlf_bytes + self.buffer.len()
    }

    /// Bytes held in memory (the message in progress).
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Takes the bytes of one read. An error means framing is lost or the peer sent more
    /// than `max_message_bytes` without completing a message: answer it if it can be
    /// answered, then close the connection. Messages completed before the error are lost
    /// with the connection, as the peer will retransmit them.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Framed, ParseError> {
        let mut out = Framed::default();
        while !bytes.is_empty() {
            if self.buffer.is_empty() {
                bytes = self.take_crlfs(bytes, &mut out);
                if self.pending_bytes() > self.limits.max_message_bytes {
                    return Err(self.too_large());
                }
                if bytes.is_empty() {
                    break;
                }
            }
            // Take no more than the limit allows (plus one byte, to detect the excess).
            let room = (self.limits.max_message_bytes + 1).saturating_sub(self.pending_bytes());
            let take = match self.length {
                Some(length) => (length - self.buffer.len()).min(bytes.len()),
                None => bytes.len().min(room),
            };
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            while let Some(message) = self.complete(&mut out)? {
                out.messages.push(message);
            }
            if self.pending_bytes() > self.limits.max_message_bytes {
                return Err(self.too_large());
            }
        }
        Ok(out)
    }

    /// Drops the CR and LF bytes that start `bytes`, counting them and the pings they
    /// hold; returns the rest.
    fn take_crlfs<'a>(&mut self, bytes: &'a [u8], out: &mut Framed) -> &'a [u8] {
        let n = bytes
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        for b in &bytes[..n] {
            self.crlf_window = (self.crlf_window << 8) | u32::from(*b);
            if self.crlf_window == PING {
                out.pings += 1;
                self.crlf_window = 0;
            }
        }
        self.crlf_bytes += n;
        &bytes[n..]
    }

    /// The message in progress, if it is complete now.
    fn complete(&mut self, out: &mut Framed) -> Result<Option<Vec<u8>>, ParseError> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let length = if let Some(length) = self.length {
            length
        } else {
            // Resume the search three bytes back: the blank line may straddle reads.
            let from = self.scanned.saturating_sub(3);
            let Some(at) = self.buffer[from..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            else {
                self.scanned = self.buffer.len();
                return Ok(None);
            };
            let length = framed_length(&self.buffer, from + at, &self.limits)?;
            if self.crlf_bytes + length > self.limits.max_message_bytes {
                return Err(self.too_large());
            }
            self.length = Some(length);
            length
        };
        if self.buffer.len() < length {
            return Ok(None);
        }
        let rest = self.buffer.split_off(length);
        let message = std::mem::replace(&mut self.buffer, rest);
        self.crlf_bytes = 0;
        self.crlf_window = 0;
        self.scanned = 0;
        self.length = None;
        // Bytes already taken beyond this message (never more than one read's worth)
        // start the next one: its leading CRLFs are counted and dropped like any others.
        if !self.buffer.is_empty() {
            let pending = std::mem::take(&mut self.buffer);
            let rest = self.take_crlfs(&pending, out);
            self.buffer.extend_from_slice(rest);
        }
        Ok(Some(message))
    }

    fn too_large(&self) -> ParseError {
        ParseError {
            kind: ParseErrorKind::MessageTooLarge,
            salvage: salvage(&self.buffer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(n: u32) -> Vec<u8> {
        format!(
            "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\nFrom: <sip:a@b>;tag={n}\r\nTo: <sip:gw@b>\r\nCall-ID: {n}@b\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
        )
        .into_bytes()
    }

    fn limits(max: usize) -> Limits {
        Limits {
            max_message_bytes: max,
            ..Limits::default()
        }
    }

    #[test]
    fn messages_split_anywhere_and_pipelined_come_out_whole() {
        let mut stream = Vec::new();
        for n in 0..3 {
            stream.extend_from_slice(b"\r\n");
            stream.extend_from_slice(&options(n));
        }
        for chunk in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut framer = StreamFramer::new(Limits::default());
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                got.extend(framer.push(piece).unwrap().messages);
            }
            assert_eq!(
                got,
                vec![options(0), options(1), options(2)],
                "chunk {chunk}"
            );
            assert_eq!(framer.pending_bytes(), 0);
        }
    }

    #[test]
    fn a_double_crlf_is_a_ping_and_single_crlfs_are_not() {
        let mut framer = StreamFramer::new(Limits::default());
        assert_eq!(framer.push(b"\r\n").unwrap().pings, 0);
        assert_eq!(framer.push(b"\r\n").unwrap().pings, 1, "split across reads");
        assert_eq!(framer.push(b"\r\n\r\n\r\n\r\n").unwrap().pings, 2);
        let mut with_message = b"\r\n\r\n".to_vec();
        with_message.extend_from_slice(&options(1));
        let read = framer.push(&with_message).unwrap();
        assert_eq!((read.pings, read.messages.len()), (1, 1));
    }

    #[test]
    fn crlfs_count_toward_the_limit_and_are_never_buffered() {
        let mut framer = StreamFramer::new(limits(2_000));
        for _ in 0..500 {
            framer.push(b"\r\n\r\n").unwrap();
        }
        assert_eq!(
            framer.pending_bytes(),
            2_000,
            "exactly the limit is allowed"
        );
        assert_eq!(framer.buffered_bytes(), 0);
        let err = framer.push(b"\r\n\r\n").unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::MessageTooLarge);

        // A complete message resets the count.
        let mut framer = StreamFramer::new(limits(2_000));
        for _ in 0..400 {
            framer.push(b"\r\n\r\n").unwrap();
        }
        assert_eq!(framer.push(&options(7)).unwrap().messages.len(), 1);
        assert_eq!(framer.pending_bytes(), 0);
        for _ in 0..400 {
            framer.push(b"\r\n\r\n").unwrap();
        }
    }

    #[test]
    fn crlfs_before_a_message_count_toward_its_size() {
        let message = options(3);
        let mut framer = StreamFramer::new(limits(message.len() + 10));
        let mut stream = vec![b'\n'; 11];
        stream.extend_from_slice(&message);
        assert_eq!(
            framer.push(&stream).unwrap_err().kind,
            ParseErrorKind::MessageTooLarge
        );
    }

    #[test]
    fn an_endless_header_section_is_refused_at_the_limit_with_bounded_memory() {
        let mut framer = StreamFramer::new(limits(4_096));
        framer
            .push(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n")
            .unwrap();
        let filler = [b'a'; 1_000];
        let mut result = Ok(Framed::default());
        for _ in 0..10 {
            result = framer.push(&filler);
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::MessageTooLarge);
        assert!(err.salvage.is_some(), "the 513 can be answered");
        assert!(framer.buffered_bytes() <= 4_097);
    }

    #[test]
    fn a_body_larger_than_the_limit_is_refused_from_its_content_length() {
        let mut framer = StreamFramer::new(limits(2_000));
        let head = b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5000\r\n\r\n";
        assert_eq!(
            framer.push(head).unwrap_err().kind,
            ParseErrorKind::MessageTooLarge
        );
    }
}
