//! Identifiers: server names, user ids and topic ids (`federation-spec/protocol.md` §2), a
//! homeserver's local [`DeviceId`] (§2.4), and the small numbers that name things inside a topic:
//! [`Epoch`] and [`MemberIndex`].
//!
//! Every identifier is validated when it is built ("parse, don't validate"); the only way to get
//! one is through [`std::str::FromStr`] or a constructor that checks it. Every `u32` is a valid
//! epoch and member index, so those two only keep the numbers apart from each other and from
//! counts; they travel as plain CBOR integers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest server name accepted (host and optional port). Every place a name goes fits it,
/// the tightest being a topic log's checkpoint origin (`protocol.md` §2.1,
/// [`crate::tlog::checkpoint::MAX_NAME_LEN`]).
pub const MAX_SERVER_NAME_LEN: usize = 255;
/// Longest host accepted in a server name: a DNS name's limit.
pub const MAX_HOST_LEN: usize = 253;

/// A host of exactly [`MAX_HOST_LEN`] characters (four labels of at most 63): with a one-digit
/// port, the longest server name; the tests of every use of a name start from it.
pub fn longest_host() -> String {
    [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join(".")
}
/// Longest user localpart accepted.
pub const MAX_LOCALPART_LEN: usize = 64;
/// Number of base32 characters in a topic id's random part (130 bits).
pub const TOPIC_ID_CHARS: usize = 26;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The server name is not a lower-case DNS name with an optional port.
    #[error("invalid server name {0:?}: expected a lower-case DNS name with an optional :port")]
    ServerName(String),
    /// The user id is not `@localpart:server`.
    #[error(
        "invalid user id {0:?}: expected @localpart:server with localpart [a-z0-9._=-]{{1,64}}"
    )]
    UserId(String),
    /// The topic id is not `!<26 base32 chars>:server`.
    #[error("invalid topic id {0:?}: expected !<26 base32 characters>:server")]
    TopicId(String),
    /// The device id is not 32 bytes (64 hexadecimal digits as text).
    #[error("invalid device id {0:?}: expected 32 bytes (64 hexadecimal digits)")]
    DeviceId(String),
}

/// A homeserver's name: a DNS name (`a.example`), optionally with `:port`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerName(String);

impl ServerName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part, without any port.
    pub fn host(&self) -> &str {
        match self.0.rsplit_once(':') {
            Some((host, _)) => host,
            None => &self.0,
        }
    }

    /// The explicit port, if the name has one.
    pub fn port(&self) -> Option<u16> {
        self.0.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    }
}

fn valid_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl FromStr for ServerName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::ServerName(s.chars().take(300).collect());
        if s.is_empty() || s.len() > MAX_SERVER_NAME_LEN {
            return Err(err());
        }
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        if let Some(p) = port {
            // Canonical decimal port: no sign, no leading zero, 1..=65535.
            let ok = !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && !p.starts_with('0')
                && p.parse::<u16>().is_ok();
            if !ok {
                return Err(err());
            }
        }
        if host.len() > MAX_HOST_LEN || !host.split('.').all(valid_dns_label) {
            return Err(err());
        }
        Ok(ServerName(s.to_owned()))
    }
}

/// A user: `@localpart:server`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId {
    full: String,
    colon: usize,
}

impl UserId {
    /// Builds `@localpart:server`.
    pub fn new(localpart: &str, server: &ServerName) -> Result<Self, IdError> {
        format!("@{localpart}:{}", server.as_str()).parse()
    }

    /// The whole id as text.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The part between `@` and the first `:`.
    pub fn localpart(&self) -> &str {
        &self.full[1..self.colon]
    }

    /// The user's homeserver.
    pub fn server(&self) -> ServerName {
        ServerName(self.full[self.colon + 1..].to_owned())
    }
}

impl FromStr for UserId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::UserId(s.chars().take(300).collect());
        let rest = s.strip_prefix('@').ok_or_else(err)?;
        let (local, server) = rest.split_once(':').ok_or_else(err)?;
        let local_ok = !local.is_empty()
            && local.len() <= MAX_LOCALPART_LEN
            && local.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'=' | b'-')
            });
        if !local_ok {
            return Err(err());
        }
        ServerName::from_str(server).map_err(|_| err())?;
        Ok(UserId {
            full: s.to_owned(),
            colon: local.len() + 1,
        })
    }
}

/// A topic: `!<26 base32 characters>:server`; the server is the topic's hosting server.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(String);

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

impl TopicId {
    /// A fresh random topic id hosted on `server`.
    pub fn random(server: &ServerName) -> Self {
        let bytes: [u8; TOPIC_ID_CHARS] = crate::crypto::random_array();
        let local: String = bytes
            .iter()
            .map(|b| BASE32[(b & 31) as usize] as char)
            .collect();
        TopicId(format!("!{local}:{}", server.as_str()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 26-character random part.
    pub fn local(&self) -> &str {
        &self.0[1..TOPIC_ID_CHARS + 1]
    }

    /// The hosting server, which orders and logs the topic.
    pub fn server(&self) -> ServerName {
        ServerName(self.0[TOPIC_ID_CHARS + 2..].to_owned())
    }
}

impl FromStr for TopicId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::TopicId(s.chars().take(300).collect());
        let rest = s.strip_prefix('!').ok_or_else(err)?;
        let (local, server) = rest.split_once(':').ok_or_else(err)?;
        if local.len() != TOPIC_ID_CHARS || !local.bytes().all(|b| BASE32.contains(&b)) {
            return Err(err());
        }
        ServerName::from_str(server).map_err(|_| err())?;
        Ok(TopicId(s.to_owned()))
    }
}

/// A device, as its homeserver knows it: the 32 bytes of the device's public key
/// (`federation-spec/protocol.md` §2.4). Device ids never leave the homeserver; inside it they
/// key logins, pre keys, inboxes, cursors and push endpoints.
///
/// Text is lower-case hex (64 digits); serde writes the 32 bytes as one byte string, the same
/// bytes a `#[serde(with = "serde_bytes")] [u8; 32]` wrote.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId([u8; DeviceId::LEN]);

impl DeviceId {
    /// Number of bytes.
    pub const LEN: usize = 32;

    /// The device whose public key is `bytes`.
    pub const fn from_bytes(bytes: [u8; DeviceId::LEN]) -> Self {
        DeviceId(bytes)
    }

    /// Exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
        bytes
            .try_into()
            .map(DeviceId)
            .map_err(|_| IdError::DeviceId(format!("{} bytes", bytes.len())))
    }

    /// The bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; DeviceId::LEN] {
        &self.0
    }

    /// The bytes.
    pub const fn to_bytes(self) -> [u8; DeviceId::LEN] {
        self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl FromStr for DeviceId {
    type Err = IdError;

    /// 64 hexadecimal digits (either case).
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = || IdError::DeviceId(s.chars().take(300).collect());
        let digits = s.as_bytes();
        if digits.len() != 2 * DeviceId::LEN {
            return Err(err());
        }
        let mut out = [0u8; DeviceId::LEN];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| err())?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *byte = u8::from_str_radix(text, 16).map_err(|_| err())?;
        }
        Ok(DeviceId(out))
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = DeviceId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string of 32 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<DeviceId, E> {
                <[u8; DeviceId::LEN]>::try_from(v)
                    .map(DeviceId)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(Visit)
    }
}

/// A topic epoch: the number of the Message Key in use, 0 at creation, one more at every change
/// that starts a new key (`federation-spec/protocol.md` §7.3).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch a topic starts in.
    pub const ZERO: Epoch = Epoch(0);

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The epoch after this one, if there is one.
    pub fn next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }

    /// The four big-endian bytes that key derivation and sealing contexts bind.
    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

/// A member's index in a topic: assigned in order of joining, never reused
/// (`federation-spec/protocol.md` §7.1). Messages name their sender by it, changes their author
/// and key boxes their recipient.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberIndex(pub u32);

impl MemberIndex {
    /// The creator of a topic (and the author of its create).
    pub const CREATOR: MemberIndex = MemberIndex(0);

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// `Display` and `Debug` both print the bare number, so messages and logs read as before the
/// numbers had types of their own.
macro_rules! number_id_traits {
    ($($t:ident),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl From<u32> for $t {
            fn from(n: u32) -> Self {
                $t(n)
            }
        }
        impl From<$t> for u32 {
            fn from(n: $t) -> u32 {
                n.0
            }
        }
        impl PartialEq<u32> for $t {
            fn eq(&self, other: &u32) -> bool {
                self.0 == *other
            }
        }
    )*};
}
number_id_traits!(Epoch, MemberIndex);

macro_rules! string_id_traits {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
string_id_traits!(ServerName, UserId, TopicId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for ok in [
            "a.example",
            "localhost",
            "a.example:8448",
            "x-1.y:1",
            "127.0.0.1:65535",
        ] {
            assert!(ok.parse::<ServerName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A.example",
            "a..example",
            "-a.example",
            "a.example:0",
            "a.example:65536",
            "a.example:08",
            "a.example:",
            "a b",
            "a.example:80:80",
            "a_b.example",
            "a.example/x",
        ] {
            assert!(bad.parse::<ServerName>().is_err(), "{bad}");
        }
        let s: ServerName = "a.example:8448".parse().unwrap();
        assert_eq!(s.host(), "a.example");
        assert_eq!(s.port(), Some(8448));
    }

    /// The longest name `protocol.md` §2.1 allows (a host of 253 and a port, 255 in all) is
    /// parsed, and its topic logs' and directory's origins and its key name are valid in a
    /// checkpoint note (`tag-log.md` §4.1, `MAX_NAME_LEN` = 255 + 7 + 26); one byte more is
    /// refused at parse.
    #[test]
    fn the_longest_server_name_signs_its_logs() {
        use crate::crypto::ServerKey;
        use crate::tlog::{Checkpoint, SignedCheckpoint, TreeSize, empty_root};
        let host = longest_host();
        assert_eq!(host.len(), MAX_HOST_LEN);
        let name: ServerName = format!("{host}:9").parse().unwrap();
        assert_eq!(name.as_str().len(), MAX_SERVER_NAME_LEN);
        let key = ServerKey::from_seed(&[1; 32]);
        let topic = TopicId::random(&name);
        for origin in [
            crate::topic::log_origin(&topic),
            crate::directory::directory_origin(&name),
        ] {
            let checkpoint = Checkpoint::new(&origin, TreeSize(1), empty_root(), 1).unwrap();
            let note = SignedCheckpoint::sign(&checkpoint, &key, name.as_str())
                .unwrap()
                .to_note();
            let parsed = SignedCheckpoint::parse(note.as_str().as_bytes()).unwrap();
            let back = parsed.verify(key.public(), name.as_str()).unwrap();
            assert_eq!(back, &checkpoint, "{origin}");
        }
        assert_eq!(
            crate::topic::log_origin(&topic).len(),
            crate::tlog::checkpoint::MAX_NAME_LEN
        );
        for longer in [
            format!("{host}:99"),
            format!("{host}.e"),
            format!("{host}e"),
        ] {
            assert!(longer.parse::<ServerName>().is_err(), "{longer}");
        }
    }

    #[test]
    fn user_ids() {
        let u: UserId = "@alice:a.example:8448".parse().unwrap();
        assert_eq!(u.localpart(), "alice");
        assert_eq!(u.server().as_str(), "a.example:8448");
        for bad in [
            "alice:a.example",
            "@:a.example",
            "@Alice:a.example",
            "@alice",
            "@al ice:a.example",
            "@alice:",
        ] {
            assert!(bad.parse::<UserId>().is_err(), "{bad}");
        }
        assert!(
            format!("@{}:a.example", "a".repeat(65))
                .parse::<UserId>()
                .is_err()
        );
    }

    #[test]
    fn device_ids() {
        let id = DeviceId::from_bytes([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(32));
        assert_eq!(text.parse::<DeviceId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<DeviceId>().unwrap(), id);
        for bad in [
            "",
            "ab",
            &"ab".repeat(33),
            &format!("{}zz", "ab".repeat(31)),
            "+b".repeat(32).as_str(),
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad}");
        }
        assert!(DeviceId::from_slice(&[1; 31]).is_err());
        assert_eq!(DeviceId::from_slice(&[1; 32]).unwrap().as_bytes(), &[1; 32]);
    }

    /// On the wire (and in stored records) a device id is the same CBOR byte string that
    /// `#[serde(with = "serde_bytes")] [u8; 32]` wrote before it had a type.
    #[test]
    fn device_id_wire_bytes_unchanged() {
        #[derive(Serialize)]
        struct Before(#[serde(with = "serde_bytes")] [u8; 32]);
        let bytes = [7u8; 32];
        let mut before = Vec::new();
        ciborium::into_writer(&Before(bytes), &mut before).unwrap();
        let mut after = Vec::new();
        ciborium::into_writer(&DeviceId::from_bytes(bytes), &mut after).unwrap();
        assert_eq!(before, after);
        let back: DeviceId = ciborium::from_reader(&before[..]).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let mut short = Vec::new();
        ciborium::into_writer(&Before([7; 32]), &mut short).unwrap();
        short[1] = 31; // header says 31 bytes
        short.pop();
        assert!(ciborium::from_reader::<DeviceId, _>(&short[..]).is_err());
    }

    #[test]
    fn topic_ids() {
        let server: ServerName = "a.example".parse().unwrap();
        let t = TopicId::random(&server);
        assert_eq!(t.server(), server);
        assert_eq!(t.as_str().parse::<TopicId>().unwrap(), t);
        assert_ne!(TopicId::random(&server), t);
        for bad in [
            "!abc:a.example",
            "!ABCDEFGHIJKLMNOPQRSTUVWXYZ:a.example",
            "abcdefghijklmnopqrstuvwxyz:a",
            "!abcdefghijklmnopqrstuvwxy1:a.example",
        ] {
            assert!(bad.parse::<TopicId>().is_err(), "{bad}");
        }
    }
}
