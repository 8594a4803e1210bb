//! The one-time link code (`federation-spec/devices.md` §4.1): what the user reads off the
//! existing device and types into the new one.
//!
//! 25 bytes — an 8-byte link id, a 16-byte secret and a CRC-8 of the two — written as 40
//! characters of Crockford's base32 alphabet (lower case, no `i`, `l`, `o`, `u`) in 8 groups of 5
//! joined by `-`, e.g. `3k9xw-…`. The CRC catches every single mistyped character before anything
//! goes over the network; the parser accepts exactly the written form and nothing else.
//!
//! The secret's 128 bits never leave the two devices: the relay sees the link id only.

use std::fmt;

use zeroize::Zeroizing;

use crate::crypto::Randomness;
use crate::crypto::sign::hex_string;

/// Bytes of a link id.
pub const LINK_ID_LEN: usize = 8;
/// Bytes of a link code's secret.
pub const LINK_SECRET_LEN: usize = 16;
/// Characters in a link code, hyphens included (`xxxxx-` × 7 + `xxxxx`).
pub const LINK_CODE_LEN: usize = GROUPS * GROUP_LEN + GROUPS - 1;

/// Crockford's base32 alphabet in lower case: no `i`, `l`, `o`, `u` to misread.
pub(crate) const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Link id, secret, CRC-8: 25 bytes = 200 bits = 40 base32 characters.
const CODE_BYTES: usize = LINK_ID_LEN + LINK_SECRET_LEN + 1;
const GROUP_LEN: usize = 5;
const GROUPS: usize = CODE_BYTES * 8 / 5 / GROUP_LEN;

/// Why a text is not a link code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkCodeError {
    /// The text is not a link code (length, a character outside the alphabet, a misplaced hyphen).
    #[error("not a link code: {reason}")]
    BadCode {
        /// What is wrong.
        reason: &'static str,
    },
    /// The code's checksum does not match: a typo.
    #[error("link code checksum is {got:02x}, expected {expected:02x}: check for a typo")]
    BadChecksum {
        /// The checksum the rest of the code gives.
        expected: u8,
        /// The checksum typed.
        got: u8,
    },
}

/// A one-time link code: link id and secret. Zeroized on drop; `Debug` shows the link id only.
pub struct LinkCode {
    link_id: [u8; LINK_ID_LEN],
    secret: Zeroizing<[u8; LINK_SECRET_LEN]>,
}

impl LinkCode {
    pub(crate) fn generate(rng: &mut Randomness<'_>) -> Self {
        LinkCode {
            link_id: rng.array(),
            secret: Zeroizing::new(rng.array()),
        }
    }

    /// The link id, under which the relay passes request and response.
    pub fn link_id(&self) -> [u8; LINK_ID_LEN] {
        self.link_id
    }

    /// The code as the user sees and types it: 8 groups of 5 characters joined by `-`.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        bytes[..LINK_ID_LEN].copy_from_slice(&self.link_id);
        bytes[LINK_ID_LEN..CODE_BYTES - 1].copy_from_slice(&self.secret[..]);
        bytes[CODE_BYTES - 1] = crc8(&bytes[..CODE_BYTES - 1]);
        let mut out = Zeroizing::new(String::with_capacity(LINK_CODE_LEN));
        for i in 0..GROUPS * GROUP_LEN {
            if i > 0 && i % GROUP_LEN == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(five_bits(&bytes[..], i))]));
        }
        out
    }

    /// Parses a code exactly as [`Self::to_text`] writes it: lower case, hyphens between groups,
    /// nothing before or after. A typo is caught by the CRC-8 (every single wrong character is).
    pub fn parse(text: &str) -> Result<Self, LinkCodeError> {
        let text = text.as_bytes();
        if text.len() != LINK_CODE_LEN {
            return Err(LinkCodeError::BadCode {
                reason: "a link code has 40 characters in 8 groups of 5",
            });
        }
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        let mut bit = 0usize;
        for (pos, &c) in text.iter().enumerate() {
            if pos % (GROUP_LEN + 1) == GROUP_LEN {
                if c != b'-' {
                    return Err(LinkCodeError::BadCode {
                        reason: "groups of 5 characters are separated by '-'",
                    });
                }
                continue;
            }
            let value = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or(LinkCodeError::BadCode {
                    reason: "characters are 0-9 and lower-case a-z without i, l, o, u",
                })?;
            for k in (0..5).rev() {
                if (value >> k) & 1 == 1
                    && let Some(b) = bytes.get_mut(bit / 8)
                {
                    *b |= 0x80 >> (bit % 8);
                }
                bit += 1;
            }
        }
        let expected = crc8(&bytes[..CODE_BYTES - 1]);
        let got = bytes[CODE_BYTES - 1];
        if expected != got {
            return Err(LinkCodeError::BadChecksum { expected, got });
        }
        let mut link_id = [0u8; LINK_ID_LEN];
        link_id.copy_from_slice(&bytes[..LINK_ID_LEN]);
        let mut secret = Zeroizing::new([0u8; LINK_SECRET_LEN]);
        secret.copy_from_slice(&bytes[LINK_ID_LEN..CODE_BYTES - 1]);
        Ok(LinkCode { link_id, secret })
    }

    /// A code from its parts (tests build codes with chosen secrets).
    #[cfg(test)]
    pub(crate) fn from_parts(
        link_id: [u8; LINK_ID_LEN],
        secret: Zeroizing<[u8; LINK_SECRET_LEN]>,
    ) -> Self {
        LinkCode { link_id, secret }
    }

    /// The secret, for the key derivations of [`super::link`].
    pub(crate) fn secret(&self) -> &[u8; LINK_SECRET_LEN] {
        &self.secret
    }
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkCode")
            .field("link_id", &hex_string(&self.link_id))
            .finish_non_exhaustive()
    }
}

/// Bits `5i .. 5i+5` of `bytes`, most significant first.
fn five_bits(bytes: &[u8], i: usize) -> u8 {
    (0..5).fold(0u8, |acc, k| {
        let bit = 5 * i + k;
        let set = bytes
            .get(bit / 8)
            .is_some_and(|b| b & (0x80 >> (bit % 8)) != 0);
        (acc << 1) | u8::from(set)
    })
}

/// CRC-8 with polynomial x⁸+x²+x+1 (0x07), initial value 0, no reflection. Appended most
/// significant bit first, it detects every error burst of up to 8 bits, and so every single wrong
/// base32 character (5 bits), including in the checksum characters themselves.
fn crc8(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |mut crc, &byte| {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_typo_is_caught() {
        let code = LinkCode::generate(&mut Randomness::Os);
        let text = code.to_text();
        let mut tried = 0;
        for (pos, c) in text.char_indices() {
            if c == '-' {
                continue;
            }
            for &other in ALPHABET.iter().filter(|&&a| char::from(a) != c) {
                let mut typo = text.as_bytes().to_vec();
                typo[pos] = other;
                let typo = String::from_utf8(typo).unwrap();
                assert!(
                    matches!(
                        LinkCode::parse(&typo),
                        Err(LinkCodeError::BadChecksum { .. })
                    ),
                    "{typo} was accepted"
                );
                tried += 1;
            }
        }
        assert_eq!(tried, 40 * 31);
        // And the untouched code parses back to the same link id and secret.
        let back = LinkCode::parse(&text).unwrap();
        assert_eq!(back.link_id, code.link_id);
        assert_eq!(*back.secret, *code.secret);
    }

    #[test]
    fn known_code() {
        // All-zero id and secret: CRC 0, so 40 zeros; 0xff..: CRC-8/0x07 of 24 0xff bytes.
        let zero = LinkCode::from_parts([0; 8], Zeroizing::new([0; 16]));
        assert_eq!(
            &*zero.to_text(),
            "00000-00000-00000-00000-00000-00000-00000-00000"
        );
        let ff = LinkCode::from_parts([0xff; 8], Zeroizing::new([0xff; 16]));
        let text = ff.to_text();
        assert!(text.starts_with("zzzzz-zzzzz-zzzzz-zzzzz-zzzzz-zzzzz-zzzzz-zzz"));
        assert_eq!(LinkCode::parse(&text).unwrap().link_id(), [0xff; 8]);
        assert_eq!(
            format!("{ff:?}"),
            "LinkCode { link_id: \"ffffffffffffffff\", .. }"
        );
    }

    #[test]
    fn the_parser_is_strict() {
        let text = LinkCode::generate(&mut Randomness::Os).to_text();
        let bad = [
            String::new(),
            text.to_uppercase(),
            format!(" {}", &*text),
            format!("{}\n", &*text),
            text.replace('-', " "),
            text.replace('-', ""),
            text[..LINK_CODE_LEN - 1].to_owned(),
            format!("{}-", &text[1..]),
            format!("i{}", &text[1..]),
            format!("é{}", &text[2..]),
        ];
        for b in &bad {
            assert!(
                matches!(LinkCode::parse(b), Err(LinkCodeError::BadCode { .. })),
                "{b:?} was accepted"
            );
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_into_the_parser(s in "\\PC{0,60}") {
                let _ = LinkCode::parse(&s);
            }

            #[test]
            fn code_like_text_parses_only_to_itself(s in "[0-9a-z-]{47}") {
                if let Ok(code) = LinkCode::parse(&s) {
                    prop_assert_eq!(&*code.to_text(), &s);
                }
            }

            #[test]
            fn codes_round_trip(id in any::<[u8; 8]>(), secret in any::<[u8; 16]>()) {
                let code = LinkCode::from_parts(id, Zeroizing::new(secret));
                let back = LinkCode::parse(&code.to_text()).unwrap();
                prop_assert_eq!(back.link_id, id);
                prop_assert_eq!(*back.secret, secret);
            }
        }
    }
}
