//! The CBOR wire format (`federation-spec/wire.cddl`).
//!
//! Rules every type follows:
//! - Objects are CBOR arrays whose first element is the protocol version (1); the version is
//!   checked before anything else is decoded. The version lives in each type's private wire
//!   struct (`…Wire`), never in the domain type, so no caller fills it in.
//! - Anything signed travels as [`SignedBytes`]: the payload as a byte string plus the signature
//!   over exactly those bytes (with the payload's domain-separation label). Decoding the payload
//!   happens only after the signature verified ([`Signed::verify`]).
//! - Decoding untrusted input checks the size limit before it starts, bounds nesting depth,
//!   refuses trailing bytes and never panics.

pub mod signed;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use signed::{Signed, SignedBytes, SignedPayload, Verified};

/// The protocol version this implementation speaks.
pub const VERSION: u8 = 1;
/// Deepest CBOR nesting accepted from the network.
pub const MAX_DEPTH: usize = 16;

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input is longer than this object may be.
    #[error("item too large: {got} bytes, limit {limit}")]
    TooLarge {
        /// Limit for this object.
        limit: usize,
        /// Length given.
        got: usize,
    },
    /// The object's version is not one this implementation speaks.
    #[error("unsupported version: expected {expected}, got {got}")]
    UnsupportedVersion {
        /// Version spoken here.
        expected: u8,
        /// Version found.
        got: u64,
    },
    /// The bytes are not valid CBOR for this object.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// Valid CBOR followed by more bytes.
    #[error("{0} trailing bytes after the CBOR item")]
    TrailingBytes(usize),
    /// The bytes decode, but are not the one canonical encoding of the value.
    #[error("non-canonical CBOR encoding")]
    NonCanonical,
    /// A field decoded but its value is not allowed.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Encodes a value as CBOR.
///
/// Our wire types only contain integers, strings, byte strings, arrays and maps with text keys,
/// which ciborium always encodes into a `Vec`; the error branch is unreachable.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if let Err(e) = ciborium::ser::into_writer(value, &mut out) {
        unreachable_encode_error(&e.to_string());
        out.clear();
    }
    out
}

#[cold]
fn unreachable_encode_error(msg: &str) {
    debug_assert!(false, "CBOR encoding into a Vec failed: {msg}");
}

/// Decodes one CBOR item that must fill `bytes` exactly, after checking `bytes.len() <= limit`.
///
/// The input must also be the canonical encoding of what it decodes to (shortest integer and
/// length forms, definite lengths, arrays of exactly the expected length): every value has
/// exactly one accepted encoding, so nobody can make two byte strings that mean the same thing.
pub fn decode<T: DeserializeOwned + Serialize>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            limit,
            got: bytes.len(),
        });
    }
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| WireError::Malformed(short_error(e)))?;
    if !reader.is_empty() {
        return Err(WireError::TrailingBytes(reader.len()));
    }
    if encode(&value) != bytes {
        return Err(WireError::NonCanonical);
    }
    Ok(value)
}

/// Like [`decode`], for objects that start with a version: the version is checked first.
pub fn decode_versioned<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            limit,
            got: bytes.len(),
        });
    }
    check_version_head(bytes)?;
    decode(bytes, limit)
}

/// Checks the version field of a decoded wire struct. Every versioned type's private wire struct
/// calls it on decode, after [`decode_versioned`] already read the version from the raw bytes.
pub fn check_version(got: u8) -> Result<(), WireError> {
    if got != VERSION {
        return Err(WireError::UnsupportedVersion {
            expected: VERSION,
            got: u64::from(got),
        });
    }
    Ok(())
}

/// Reads the version at the head of an array-shaped object without decoding the rest.
fn check_version_head(bytes: &[u8]) -> Result<(), WireError> {
    let malformed =
        || WireError::Malformed("expected an array that starts with the version".into());
    let (&head, rest) = bytes.split_first().ok_or_else(malformed)?;
    // Major type 4 (array), definite length 0..=23 or with a 1/2/4-byte length.
    if head >> 5 != 4 || head & 0x1f > 26 {
        return Err(malformed());
    }
    let skip = match head & 0x1f {
        24 => 1,
        25 => 2,
        26 => 4,
        _ => 0,
    };
    let item = rest
        .get(skip..)
        .and_then(|r| r.first())
        .ok_or_else(malformed)?;
    // Major type 0 (unsigned integer); versions above 23 are not ours whatever they are.
    if item >> 5 != 0 {
        return Err(malformed());
    }
    let got = u64::from(item & 0x1f);
    if got != u64::from(VERSION) {
        return Err(WireError::UnsupportedVersion {
            expected: VERSION,
            got,
        });
    }
    Ok(())
}

fn short_error<E: std::fmt::Debug>(e: ciborium::de::Error<E>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "unexpected end of input".into(),
        ciborium::de::Error::Syntax(at) => format!("syntax error at byte {at}"),
        ciborium::de::Error::Semantic(at, msg) => match at {
            Some(at) => format!("{msg} (at byte {at})"),
            None => msg,
        },
        ciborium::de::Error::RecursionLimitExceeded => "nested too deeply".into(),
    }
}

/// Serde helper for fixed-size byte arrays encoded as CBOR byte strings.
pub mod fixed_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes `[u8; N]` as a byte string.
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let b = serde_bytes::ByteBuf::deserialize(d)?;
        b.as_slice().try_into().map_err(|_| {
            serde::de::Error::invalid_length(b.len(), &"a byte string of the fixed size")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing(u8, u32, #[serde(with = "serde_bytes")] Vec<u8>);

    #[test]
    fn round_trip_and_errors() {
        let t = Thing(1, 7, vec![1, 2, 3]);
        let bytes = encode(&t);
        assert_eq!(bytes, [0x83, 0x01, 0x07, 0x43, 1, 2, 3]);
        assert_eq!(decode_versioned::<Thing>(&bytes, 100).unwrap(), t);
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            decode_versioned::<Thing>(&extra, 100),
            Err(WireError::TrailingBytes(1))
        );
        assert!(matches!(
            decode_versioned::<Thing>(&bytes, 3),
            Err(WireError::TooLarge { .. })
        ));
        let v2 = encode(&Thing(2, 7, vec![]));
        assert_eq!(
            decode_versioned::<Thing>(&v2, 100),
            Err(WireError::UnsupportedVersion {
                expected: 1,
                got: 2
            })
        );
        assert!(matches!(
            decode_versioned::<Thing>(&bytes[..4], 100),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            decode_versioned::<Thing>(&[], 100),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn non_canonical_forms_refused() {
        // Array claims 4 items but holds 3; integer 7 in a 1-byte-length form; indefinite array.
        for bad in [
            &[0x84, 0x01, 0x07, 0x43, 1, 2, 3][..],
            &[0x83, 0x01, 0x18, 0x07, 0x43, 1, 2, 3][..],
            &[0x9f, 0x01, 0x07, 0x43, 1, 2, 3, 0xff][..],
        ] {
            assert!(decode::<Thing>(bad, 100).is_err(), "{bad:x?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut deep = vec![0x81u8; 10_000];
        deep.push(0x01);
        assert!(decode::<ciborium::Value>(&deep, 100_000).is_err());
    }

    /// `protocol.md` §1.2 rule 3: the outermost array is depth 1, each array inside adds one;
    /// 16 is accepted, 17 refused (even for a type that would take any value).
    #[test]
    fn nesting_depth_boundary() {
        let nested = |depth: usize| {
            let mut bytes = vec![0x81u8; depth];
            bytes.push(0x01);
            bytes
        };
        assert!(decode::<ciborium::Value>(&nested(16), 100).is_ok());
        assert_eq!(
            decode::<ciborium::Value>(&nested(17), 100),
            Err(WireError::Malformed("nested too deeply".into()))
        );
    }

    /// `protocol.md` §1.2 rule 4: no protocol type has a tag or a float. A tag in front of a
    /// field is skipped by the decoder and caught by the re-encoding; a float is not an integer.
    #[test]
    fn tags_and_floats_refused() {
        // Tag 1 (epoch time) in front of the second field; tag 2 (bignum) carrying 7.
        for tagged in [
            &[0x83, 0x01, 0xc1, 0x07, 0x43, 1, 2, 3][..],
            &[0x83, 0x01, 0xc2, 0x41, 0x07, 0x43, 1, 2, 3][..],
        ] {
            assert_eq!(
                decode::<Thing>(tagged, 100),
                Err(WireError::NonCanonical),
                "{tagged:x?}"
            );
        }
        // A tag in front of the whole object: not an array that starts with the version.
        assert!(matches!(
            decode_versioned::<Thing>(&[0xd8, 0x18, 0x83, 0x01, 0x07, 0x43, 1, 2, 3], 100),
            Err(WireError::Malformed(_))
        ));
        // 7.0 as a half, single and double float where an integer belongs.
        for float in [
            &[0x83, 0x01, 0xf9, 0x47, 0x00, 0x43, 1, 2, 3][..],
            &[0x83, 0x01, 0xfa, 0x40, 0xe0, 0x00, 0x00, 0x43, 1, 2, 3][..],
            &[
                0x83, 0x01, 0xfb, 0x40, 0x1c, 0, 0, 0, 0, 0, 0, 0x43, 1, 2, 3,
            ][..],
        ] {
            assert!(
                matches!(decode::<Thing>(float, 100), Err(WireError::Malformed(_))),
                "{float:x?}"
            );
        }
    }

    #[test]
    fn huge_declared_length_does_not_allocate() {
        // A byte string that claims 2^63 bytes in a 10-byte input.
        let bytes = [0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decode::<serde_bytes::ByteBuf>(&bytes, 100).is_err());
    }
}
