//! Properties of the SIP parser: it never panics, reads every legal spelling of a message
//! the same way, refuses every truncation, and frames streams independently of how the
//! bytes are chunked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use telephony_gateway::sip::{
    Limits, Message, parse_datagram, parse_stream_message, stream_message_len,
};

fn header_name(long: &'static str, compact: Option<&'static str>) -> impl Strategy<Value = String> {
    let choices: Vec<String> = std::iter::once(long.to_owned())
        .chain(std::iter::once(long.to_ascii_lowercase()))
        .chain(std::iter::once(long.to_ascii_uppercase()))
        .chain(compact.map(str::to_owned))
        .collect();
    proptest::sample::select(choices)
}

/// Linear white space around separators: nothing, spaces, tabs or a fold.
fn lws() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["", " ", "  ", "\t", "\r\n ", " \r\n\t"])
}

/// White space allowed before a header's colon (no folding there).
fn hcolon() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["", " ", "\t "])
}

prop_compose! {
    fn spelled_request()(
        h1 in hcolon(), h2 in hcolon(),
        via in header_name("Via", Some("v")),
        from in header_name("From", Some("f")),
        to in header_name("To", Some("t")),
        call in header_name("Call-ID", Some("i")),
        cseq in header_name("CSeq", None),
        len in header_name("Content-Length", Some("l")),
        w1 in lws(), w2 in lws(), w3 in lws(), w4 in lws(),
        seq in 0u32..(1 << 31),
        zeros in 0usize..4,
        tag in "[a-zA-Z0-9]{1,16}",
        branch in "[a-zA-Z0-9]{1,20}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        order in Just(()).prop_perturb(|(), mut rng| { let mut v: Vec<usize> = (0..6).collect(); for i in (1..v.len()).rev() { let j = (rng.next_u32() as usize) % (i + 1); v.swap(i, j); } v }),
    ) -> (Vec<u8>, u32, String, String, Vec<u8>) {
        let lines = [
            format!("{via}{h1}:{w2}SIP{w3}/{w4}2.0/UDP 192.0.2.1:5060{w1};{w2}branch{w3}={w4}z9hG4bK{branch}"),
            format!("{from}{h2}:{w2}\"Caller\"{w3}<sip:caller@example.com>{w4};{w1}tag{w2}={w3}{tag}"),
            format!("{to}:{w1}<urn:service:sos>"),
            format!("{call}:{w2}{branch}@example.com"),
            format!("{cseq}:{w3}{}{seq}{w4} OPTIONS", "0".repeat(zeros)),
            format!("{len}:{w1}{}", body.len()),
        ];
        let mut text = String::from("OPTIONS sip:gw@example.com SIP/2.0\r\n");
        for i in order {
            text.push_str(&lines[i]);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&body);
        (bytes, seq, tag, format!("z9hG4bK{branch}"), body)
    }
}

fn valid_invite() -> Vec<u8> {
    let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let mut bytes = format!(
        "INVITE urn:service:sos SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@b.example>;tag=1\r\nTo: <urn:service:sos>\r\nCall-ID: c@d\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let limits = Limits::default();
        let _ = parse_datagram(&bytes, &limits);
        let _ = stream_message_len(&bytes, &limits);
    }

    #[test]
    fn mutated_messages_never_panic(
        index in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut bytes = valid_invite();
        let i = index.index(bytes.len());
        bytes[i] = byte;
        bytes.truncate(cut.index(bytes.len() + 1).max(i));
        let _ = parse_datagram(&bytes, &Limits::default());
    }

    #[test]
    fn every_legal_spelling_reads_the_same((bytes, seq, tag, branch, body) in spelled_request()) {
        let message = parse_datagram(&bytes, &Limits::default());
        let Ok(Message::Request(r)) = message else {
            panic!("refused: {:?}\n{}", message, String::from_utf8_lossy(&bytes));
        };
        prop_assert_eq!(r.core.cseq.number, seq);
        prop_assert_eq!(r.core.from.tag(), Some(tag.as_str()));
        prop_assert_eq!(r.core.via[0].branch(), Some(branch.as_str()));
        prop_assert_eq!(r.core.from.display_name.as_deref(), Some("Caller"));
        prop_assert_eq!(r.body, body);
    }

    #[test]
    fn every_truncation_of_a_message_with_a_body_is_refused(cut in any::<proptest::sample::Index>()) {
        let bytes = valid_invite();
        let cut = cut.index(bytes.len());
        prop_assert!(parse_datagram(&bytes[..cut], &Limits::default()).is_err());
    }

    #[test]
    fn stream_framing_does_not_depend_on_chunking(chunks in proptest::collection::vec(1usize..97, 1..40)) {
        let one = valid_invite();
        let mut stream = Vec::new();
        for _ in 0..3 { stream.extend_from_slice(b"\r\n\r\n"); stream.extend_from_slice(&one); }
        let limits = Limits::default();
        let mut buffer = Vec::new();
        let mut messages = Vec::new();
        let mut offset = 0;
        let mut sizes = chunks.into_iter().cycle();
        while offset < stream.len() {
            let n = sizes.next().unwrap().min(stream.len() - offset);
            buffer.extend_from_slice(&stream[offset..offset + n]);
            offset += n;
            while let Some(len) = stream_message_len(&buffer, &limits).unwrap() {
                let message: Vec<u8> = buffer.drain(..len).collect();
                messages.push(parse_stream_message(&message, &limits).unwrap());
            }
        }
        prop_assert_eq!(messages.len(), 3);
        prop_assert!(buffer.is_empty());
    }
}
