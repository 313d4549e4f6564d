//! Where the caller is: the `Geolocation` header (RFC 6442) and the PIDF-LO it points to.
//!
//! A call is never refused for its location: every problem becomes
//! [`ReportedLocation::Unusable`] with a reason for the operator, and a call without any
//! location is [`ReportedLocation::Absent`].

pub mod multipart;
pub mod pidf;

use dispatch_core::intake::ReportedLocation;

use crate::sip::{HeaderLookup, HeaderName, NameAddr, Request, Scheme};
use multipart::Part;
pub use pidf::{MAX_PIDF_BYTES, PidfError, read_pidf_lo};

const PIDF_TYPE: &str = "application/pidf+xml";

/// The body parts of a request: the parts of a `multipart/*` body, or the body itself.
pub fn body_parts(request: &Request) -> Result<Vec<Part>, multipart::MultipartError> {
    match &request.core.content_type {
        Some(ct) if ct.essence.starts_with("multipart/") => multipart::split(ct, &request.body),
        Some(ct) if !request.body.is_empty() => Ok(vec![Part {
            content_type: Some(ct.clone()),
            content_id: None,
            body: request.body.clone(),
        }]),
        _ => Ok(Vec::new()),
    }
}

/// The session description (SDP) of a request, if it has one.
pub fn sdp_of(request: &Request) -> Option<Vec<u8>> {
    body_parts(request).ok()?.into_iter().find_map(|p| {
        p.content_type
            .filter(|ct| ct.essence == "application/sdp")
            .map(|_| p.body)
    })
}

/// The location a request reports.
pub fn reported_location(request: &Request) -> ReportedLocation {
    let headers: Vec<&str> = request.header_values(&HeaderName::Geolocation).collect();
    let parts = body_parts(request);
    if headers.is_empty() {
        // RFC 6442 wants the header, but a PIDF-LO body without it is still a location.
        return match &parts {
            Ok(parts) => match parts.iter().find(|p| is_pidf(p)) {
                Some(part) => from_pidf(part),
                None => ReportedLocation::Absent,
            },
            Err(e) => unusable(format!("body: {e}")),
        };
    }
    let mut values = Vec::new();
    for h in headers {
        match NameAddr::parse_list(h) {
            Ok(list) => values.extend(list),
            Err(e) => return unusable(format!("Geolocation header is malformed ({e})")),
        }
    }
    let mut first_problem = None;
    for value in &values {
        let uri = value.uri.as_str();
        let outcome = if let Some(cid) = uri
            .get(..4)
            .filter(|s| s.eq_ignore_ascii_case("cid:"))
            .map(|_| &uri[4..])
        {
            let wanted = crate::sip::percent_decoded(cid);
            match &parts {
                Ok(parts) => match parts
                    .iter()
                    .find(|p| p.content_id.as_deref() == Some(wanted.as_str()))
                {
                    Some(part) if is_pidf(part) => from_pidf(part),
                    Some(_) => unusable(format!(
                        "Geolocation {} points to a body part that is not {PIDF_TYPE}",
                        short(uri)
                    )),
                    None => unusable(format!(
                        "Geolocation {} has no matching body part",
                        short(uri)
                    )),
                },
                Err(e) => unusable(format!("body: {e}")),
            }
        } else {
            let scheme = match value.uri.scheme() {
                Scheme::Sip | Scheme::Sips => "sip",
                Scheme::Other(s) => s.as_str(),
                _ => "unknown",
            };
            unusable(format!(
                "location by reference ({scheme}:) is not dereferenced by the gateway"
            ))
        };
        match outcome {
            ReportedLocation::Reported(_) => return outcome,
            other => {
                first_problem.get_or_insert(other);
            }
        }
    }
    first_problem.unwrap_or(ReportedLocation::Absent)
}

fn is_pidf(part: &Part) -> bool {
    part.content_type
        .as_ref()
        .is_some_and(|ct| ct.essence == PIDF_TYPE)
}

fn from_pidf(part: &Part) -> ReportedLocation {
    match read_pidf_lo(&part.body) {
        Ok(location) => ReportedLocation::Reported(Box::new(location)),
        Err(e) => unusable(e.to_string()),
    }
}

fn unusable(reason: String) -> ReportedLocation {
    ReportedLocation::Unusable { reason }
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Limits, Message, parse_datagram};

    fn invite(extra_headers: &str, content_type: &str, body: &str) -> Request {
        let text = format!(
            "INVITE urn:service:sos SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@carrier.example>;tag=1\r\nTo: <urn:service:sos>\r\nCall-ID: loc@192.0.2.1\r\nCSeq: 1 INVITE\r\n{extra_headers}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match parse_datagram(text.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn multipart_body(pidf: &str) -> String {
        format!(
            "--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b1\r\nContent-Type: application/pidf+xml\r\nContent-ID: <target123@carrier.example>\r\n\r\n{pidf}\r\n--b1--\r\n"
        )
    }

    const PIDF: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml" entity="pres:x@y"><tuple id="a"><status><gp:geopriv><gp:location-info><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>4.65 -74.05</gml:pos></gml:Point></gp:location-info><gp:method>Cell</gp:method></gp:geopriv></status></tuple></presence>"#;

    #[test]
    fn geolocation_cid_reference_finds_the_pidf_part() {
        let r = invite(
            "Geolocation: <cid:target123@carrier.example>\r\nGeolocation-Routing: no\r\n",
            "multipart/mixed;boundary=b1",
            &multipart_body(PIDF),
        );
        let ReportedLocation::Reported(loc) = reported_location(&r) else {
            panic!("{:?}", reported_location(&r))
        };
        assert_eq!(loc.method.as_deref(), Some("Cell"));
        assert_eq!(sdp_of(&r).unwrap(), b"v=0\r\n");
    }

    #[test]
    fn missing_and_broken_locations_are_reported_not_refused() {
        let plain = invite("", "application/sdp", "v=0\r\n");
        assert_eq!(reported_location(&plain), ReportedLocation::Absent);

        let dangling = invite(
            "Geolocation: <cid:other@carrier.example>\r\n",
            "multipart/mixed;boundary=b1",
            &multipart_body(PIDF),
        );
        assert!(
            matches!(reported_location(&dangling), ReportedLocation::Unusable { reason } if reason.contains("no matching body part"))
        );

        let corrupt = invite(
            "Geolocation: <cid:target123@carrier.example>\r\n",
            "multipart/mixed;boundary=b1",
            &multipart_body(&PIDF.replace("4.65 -74.05", "95 -74.05")),
        );
        assert!(
            matches!(reported_location(&corrupt), ReportedLocation::Unusable { reason } if reason.contains("out of range"))
        );

        let by_reference = invite(
            "Geolocation: <https://lis.carrier.example/loc/123>\r\n",
            "application/sdp",
            "v=0\r\n",
        );
        assert!(
            matches!(reported_location(&by_reference), ReportedLocation::Unusable { reason } if reason.contains("by reference"))
        );

        let unterminated = invite(
            "Geolocation: <cid:target123@carrier.example>\r\n",
            "multipart/mixed;boundary=b1",
            "--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n",
        );
        assert!(
            matches!(reported_location(&unterminated), ReportedLocation::Unusable { reason } if reason.contains("not terminated"))
        );

        let bad_header = invite("Geolocation: cid:\"x\r\n", "application/sdp", "v=0\r\n");
        assert!(matches!(
            reported_location(&bad_header),
            ReportedLocation::Unusable { .. }
        ));
    }

    #[test]
    fn a_pidf_body_without_the_header_is_still_read() {
        let r = invite("", "multipart/mixed;boundary=b1", &multipart_body(PIDF));
        assert!(matches!(
            reported_location(&r),
            ReportedLocation::Reported(_)
        ));
    }
}
