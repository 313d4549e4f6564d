//! CRUE authorisation codes.
//!
//! Decreto 793 de 2018 (Bogotá): every regulated attention gets an alphanumeric
//! authorisation code from the CRUE, without which the ambulance operator cannot bill the
//! patient's insurer. Regula's codes look like `CR26-7K3Q-9XM2-F`:
//!
//! - `CR` and the two-digit year of issue (Bogotá time), for people reading them;
//! - eight Crockford base-32 characters (no `I`, `L`, `O`, `U`) carrying a 40-bit value
//!   obtained from the code's **sequence number** by a fixed bijective scramble, so that
//!   consecutive codes do not look consecutive and distinct sequence numbers always give
//!   distinct codes;
//! - one check character: the position-weighted sum (weights 1, 2, 3, …) of the values of the
//!   12 alphanumeric characters before it (0–9 → 0–9, A–Z → 10–35), modulo 37. Because 37 is
//!   prime and larger than every value and weight, any single changed character and any swap
//!   of two adjacent different characters changes the sum, so every such typo is caught.
//!   The check value 36 has no alphanumeric symbol: the sequence numbers whose code would need
//!   it (about 1 in 37) are skipped, never issued ([`AuthorizationCode::issue_from`]).
//!
//! The sequence counter lives in the dispatch state and only ever increases (it is rebuilt
//! from the event log on replay), so a code is never issued twice, even across years.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ISO_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PAYLOAD_BITS: u32 = 40;
const PAYLOAD_MASK: u64 = (1 << PAYLOAD_BITS) - 1;
/// Odd multiplier: multiplication modulo 2^40 by an odd number is a bijection.
const SCRAMBLE_MULTIPLIER: u64 = 0x009E_3779_B97F;
const SCRAMBLE_XOR: u64 = 0x005A_C3E1_7B29;

/// The largest sequence number a code can carry (2^40 − 1).
pub const MAX_SEQUENCE: u64 = PAYLOAD_MASK;

/// Why a code could not be issued or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not of the form `CR` + two-digit year, two groups of four symbols and a check
    /// character (`CR26-7K3Q-9XM2-F`).
    #[error("{0:?} is not a CRUE authorisation code (expected the form CR26-7K3Q-9XM2-F)")]
    Format(String),
    /// The check character does not match: a typo.
    #[error("{0:?} has a wrong check character; the code was probably mistyped")]
    Checksum(String),
    /// Sequence number beyond 2^40 − 1.
    #[error("sequence number {0} is beyond the last code that can be issued")]
    Exhausted(u64),
    /// This sequence number's check value has no alphanumeric symbol; it is skipped.
    #[error("sequence number {0} is skipped (its check value has no symbol)")]
    Skipped(u64),
}

/// A CRUE authorisation code.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthorizationCode(String);

impl AuthorizationCode {
    /// Issues the code of the first usable sequence number at or after `sequence`; its
    /// [`AuthorizationCode::sequence`] tells where the counter must continue.
    pub fn issue_from(sequence: u64, year: i16) -> Result<Self, CodeError> {
        let mut s = sequence;
        loop {
            match Self::issue(s, year) {
                Err(CodeError::Skipped(_)) => s += 1,
                other => return other,
            }
        }
    }

    /// Issues the code for exactly this sequence number in a year (Bogotá time).
    pub fn issue(sequence: u64, year: i16) -> Result<Self, CodeError> {
        if sequence > MAX_SEQUENCE {
            return Err(CodeError::Exhausted(sequence));
        }
        let mut payload = scramble(sequence);
        let mut chars = [0u8; 8];
        for slot in chars.iter_mut().rev() {
            *slot = CROCKFORD[usize::try_from(payload & 31).unwrap_or(0)];
            payload >>= 5;
        }
        let yy = year.rem_euclid(100);
        let body = format!(
            "CR{yy:02}-{}-{}",
            std::str::from_utf8(&chars[..4]).unwrap_or_default(),
            std::str::from_utf8(&chars[4..]).unwrap_or_default()
        );
        let check = check_character(&body).ok_or(CodeError::Skipped(sequence))?;
        Ok(Self(format!("{body}-{}", char::from(check))))
    }

    /// Reads a code typed by a person: case-insensitive, surrounding spaces ignored, check
    /// character verified.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let code = text.trim().to_ascii_uppercase();
        let b = code.as_bytes();
        let format_ok = b.len() == 16
            && b.starts_with(b"CR")
            && b[2].is_ascii_digit()
            && b[3].is_ascii_digit()
            && b[4] == b'-'
            && b[9] == b'-'
            && b[14] == b'-'
            && b[5..9]
                .iter()
                .chain(&b[10..14])
                .all(|c| CROCKFORD.contains(c))
            && ISO_ALPHABET.contains(&b[15]);
        if !format_ok {
            return Err(CodeError::Format(text.to_owned()));
        }
        if check_character(&code[..14]) != Some(b[15]) {
            return Err(CodeError::Checksum(text.to_owned()));
        }
        Ok(Self(code))
    }

    /// The sequence number the code was issued for.
    pub fn sequence(&self) -> u64 {
        let payload = self
            .0
            .bytes()
            .skip(5)
            .take(9)
            .filter(|&c| c != b'-')
            .fold(0u64, |acc, c| {
                let v = CROCKFORD.iter().position(|&x| x == c).unwrap_or(0);
                (acc << 5) | u64::try_from(v).unwrap_or(0)
            });
        unscramble(payload)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorizationCode({})", self.0)
    }
}

impl FromStr for AuthorizationCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AuthorizationCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AuthorizationCode> for String {
    fn from(c: AuthorizationCode) -> Self {
        c.0
    }
}

/// A bijection on 40-bit values: xor, odd multiplication, xorshift.
fn scramble(x: u64) -> u64 {
    let mut v = (x ^ SCRAMBLE_XOR) & PAYLOAD_MASK;
    v = v.wrapping_mul(SCRAMBLE_MULTIPLIER) & PAYLOAD_MASK;
    v ^= v >> 20;
    v
}

fn unscramble(y: u64) -> u64 {
    // Inverse of v ^= v >> 20 on 40 bits: applying it twice recovers v.
    let mut v = y ^ (y >> 20);
    v = v.wrapping_mul(inverse_mod_2_40(SCRAMBLE_MULTIPLIER)) & PAYLOAD_MASK;
    (v ^ SCRAMBLE_XOR) & PAYLOAD_MASK
}

/// Multiplicative inverse of an odd number modulo 2^40 (Newton's iteration).
const fn inverse_mod_2_40(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits for odd a
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x & PAYLOAD_MASK
}

/// The check character over the alphanumeric characters of `text` (separators skipped):
/// Σ weightᵢ × valueᵢ mod 37 with weights 1, 2, 3, …; `None` when the result is 36.
fn check_character(text: &str) -> Option<u8> {
    let sum = text
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .zip(1u32..)
        .map(|(c, weight)| {
            let value = ISO_ALPHABET
                .iter()
                .position(|&x| x == c)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0);
            weight * value
        })
        .sum::<u32>();
    ISO_ALPHABET
        .get(usize::try_from(sum % 37).unwrap_or(36))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn codes_have_the_documented_shape_and_round_trip() {
        let code = AuthorizationCode::issue_from(1, 2026).unwrap();
        let text = code.to_string();
        assert_eq!(text.len(), 16, "{text}");
        assert!(text.starts_with("CR26-"), "{text}");
        assert_eq!(AuthorizationCode::parse(&text).unwrap(), code);
        assert_eq!(
            AuthorizationCode::parse(&text.to_lowercase()).unwrap(),
            code
        );
        assert!(code.sequence() >= 1);
    }

    #[test]
    fn about_one_sequence_number_in_37_is_skipped_and_issue_from_moves_past_it() {
        let skipped = (0..37_000u64)
            .filter(|&s| AuthorizationCode::issue(s, 2026) == Err(CodeError::Skipped(s)))
            .collect::<Vec<_>>();
        assert!((800..1200).contains(&skipped.len()), "{}", skipped.len());
        let s = skipped[0];
        let code = AuthorizationCode::issue_from(s, 2026).unwrap();
        assert!(code.sequence() > s);
    }

    #[test]
    fn consecutive_sequence_numbers_give_unrelated_looking_distinct_codes() {
        let codes: Vec<String> = (1..=10_000)
            .filter_map(|n| AuthorizationCode::issue(n, 2026).ok())
            .map(|c| c.to_string())
            .collect();
        assert!(codes.len() > 9_600);
        let unique: HashSet<&String> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
        assert_ne!(codes[0][5..9], codes[1][5..9]);
    }

    #[test]
    fn a_mistyped_character_is_caught_by_the_check() {
        let code = AuthorizationCode::issue_from(4242, 2026)
            .unwrap()
            .to_string();
        let mut bytes = code.clone().into_bytes();
        bytes[6] = if bytes[6] == b'7' { b'8' } else { b'7' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(
            AuthorizationCode::parse(&typo),
            Err(CodeError::Checksum(typo.clone()))
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "CR26",
            "CR26-7K3Q-9XM2",
            "XX26-7K3Q-9XM2-F",
            "CR26-7K3Q-9XM2-F-",
            "CR26-IIII-9XM2-F",
        ] {
            assert!(
                matches!(AuthorizationCode::parse(bad), Err(CodeError::Format(_))),
                "{bad}"
            );
        }
        assert_eq!(
            AuthorizationCode::issue(MAX_SEQUENCE + 1, 2026),
            Err(CodeError::Exhausted(MAX_SEQUENCE + 1))
        );
    }

    proptest! {
        #[test]
        fn every_sequence_number_round_trips(seq in 0u64..MAX_SEQUENCE - 1000, year in 2000i16..2100) {
            let code = AuthorizationCode::issue_from(seq, year).unwrap();
            prop_assert!(code.sequence() >= seq && code.sequence() < seq + 1000);
            prop_assert_eq!(AuthorizationCode::parse(code.as_str()).unwrap(), code);
        }

        #[test]
        fn any_single_substitution_is_detected(seq in 0u64..1_000_000, pos in 0usize..15, replacement in 0usize..36) {
            let code = AuthorizationCode::issue_from(seq, 2026).unwrap().to_string();
            let mut b = code.clone().into_bytes();
            prop_assume!(b[pos] != b'-' && b[pos] != ISO_ALPHABET[replacement]);
            b[pos] = ISO_ALPHABET[replacement];
            let typo = String::from_utf8(b).unwrap();
            prop_assert!(AuthorizationCode::parse(&typo).is_err(), "{} accepted as {}", typo, code);
        }

        #[test]
        fn any_adjacent_swap_of_different_characters_is_detected(seq in 0u64..1_000_000, pos in 0usize..14) {
            let code = AuthorizationCode::issue_from(seq, 2026).unwrap().to_string();
            let mut b = code.clone().into_bytes();
            let next = if b[pos + 1] == b'-' { pos + 2 } else { pos + 1 };
            prop_assume!(b[pos] != b'-' && next < 15 && b[pos] != b[next]);
            b.swap(pos, next);
            let swapped = String::from_utf8(b).unwrap();
            prop_assert!(AuthorizationCode::parse(&swapped).is_err());
        }
    }
}
