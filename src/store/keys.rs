//! Key encoding: fixed byte layouts that sort the way the store scans them.
//!
//! Every key is a concatenation of fields:
//! - an id (user id, topic id) is `u16be(len) ‖ utf-8 bytes`: length-prefixed, so no id is a
//!   prefix of another and a scan over one user's keys never sees another user's;
//! - an integer (index, sequence number, expiry) is big-endian `u64` (8 bytes), so byte order is
//!   numeric order and a range scan returns items in order;
//! - a level or role is one byte; a device key, hash or token is its raw 32 bytes; a key id its
//!   raw 16 bytes; a link id its raw 8 bytes.
//!
//! The layout of each table is documented in the module doc of [`super`].

use super::StoreError;

/// Builds a key field by field.
#[derive(Debug, Default, Clone)]
pub(super) struct Key(Vec<u8>);

impl Key {
    pub(super) fn new() -> Self {
        Key(Vec::with_capacity(64))
    }

    /// A length-prefixed id. Ids are validated types of at most a few hundred bytes; the
    /// length saturates rather than wraps for anything longer (such an id cannot be built).
    pub(super) fn id(mut self, id: &str) -> Self {
        let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(id.as_bytes());
        self
    }

    pub(super) fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(super) fn u8(mut self, n: u8) -> Self {
        self.0.push(n);
        self
    }

    pub(super) fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    pub(super) fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Reads the fields of a key back, in the order they were written.
pub(super) struct KeyReader<'a> {
    rest: &'a [u8],
    table: &'static str,
}

impl<'a> KeyReader<'a> {
    pub(super) fn new(key: &'a [u8], table: &'static str) -> Self {
        KeyReader { rest: key, table }
    }

    fn corrupt(&self) -> StoreError {
        StoreError::Corrupt { table: self.table }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn id<T: std::str::FromStr>(&mut self) -> Result<T, StoreError> {
        let len = self.array::<2>()?;
        let bytes = self.take(usize::from(u16::from_be_bytes(len)))?;
        let text = std::str::from_utf8(bytes).map_err(|_| self.corrupt())?;
        text.parse().map_err(|_| self.corrupt())
    }

    pub(super) fn skip_id(&mut self) -> Result<(), StoreError> {
        let len = self.array::<2>()?;
        self.take(usize::from(u16::from_be_bytes(len)))?;
        Ok(())
    }

    pub(super) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.corrupt())
    }

    /// Checks that the whole key was read.
    pub(super) fn end(self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }
}

/// A big-endian `u64` value.
pub(super) fn read_u64(value: &[u8], table: &'static str) -> Result<u64, StoreError> {
    value
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt { table })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendezvous_protocol::ids::UserId;

    #[test]
    fn round_trip_and_order() {
        let user: UserId = "@alice:a.example".parse().unwrap();
        let k = Key::new()
            .id(user.as_str())
            .u64(7)
            .u8(3)
            .bytes(&[9; 4])
            .build();
        let mut r = KeyReader::new(&k, "t");
        assert_eq!(r.id::<UserId>().unwrap(), user);
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.array::<1>().unwrap(), [3]);
        assert_eq!(r.array::<4>().unwrap(), [9; 4]);
        r.end().unwrap();
        // Big-endian integers sort numerically.
        let a = Key::new().id("x").u64(255).build();
        let b = Key::new().id("x").u64(256).build();
        assert!(a < b);
        // Length prefixes keep "@a:b" keys apart from "@a:bc" keys.
        let short = Key::new().id("@a:b").build();
        let long = Key::new().id("@a:bc").build();
        assert!(!long.starts_with(&short));
    }
}
