//! Where an HTTP/1 request message ends (RFC 9112 §6.3), so that [`super::head`] can find the
//! next head on a kept-alive connection: a `Content-Length` body, a chunked body (RFC 9112 §7.1)
//! up to its last chunk and trailers, or the rest of the connection (`Upgrade`, `CONNECT`).
//!
//! The tracker only locates the boundary; it never buffers. A chunked framing it cannot follow
//! (a bad size line, a missing CRLF, an over-long line or trailer section) hands the rest of the
//! connection to actix-http, whose decoder refuses it.

/// The longest chunk-size line (with extensions) followed; actix-http allows no more either.
const MAX_LINE: usize = 4096;
/// The most trailer bytes followed after the last chunk.
const MAX_TRAILERS: usize = 128 * 1024;

/// What follows a request head, as actix-http's `h1::decoder` frames it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body: the next head starts right after.
    None,
    /// `Content-Length: n`, n > 0: n bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// Everything from here on belongs to this request (`Upgrade`, `CONNECT`).
    Rest,
}

/// Where [`Body::advance`] left the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The body goes on past these bytes.
    More,
    /// The body ended: the next head starts after the bytes used.
    Done,
    /// Everything from here on is passed through unchecked.
    Rest,
}

/// The state of a chunked body between two reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// In a chunk-size line.
    Size {
        /// The size so far.
        size: u64,
        /// Its hex digits so far.
        digits: usize,
        /// Whether its digits ended (an extension, whitespace or the CR followed).
        ended: bool,
        /// The line's length so far.
        line: usize,
    },
    /// In chunk data: bytes left.
    Data(u64),
    /// After chunk data: the CR.
    DataCr,
    /// After chunk data: the LF.
    DataLf,
    /// After the last chunk, in the trailer section.
    Trailer {
        /// The current line's length (CR not counted).
        line: usize,
        /// All trailer bytes so far.
        total: usize,
    },
}

impl Chunked {
    /// A chunked body from its start.
    pub fn new() -> Chunked {
        Chunked::Size {
            size: 0,
            digits: 0,
            ended: false,
            line: 0,
        }
    }

    /// One framing byte (not chunk data); `None` when the framing cannot be followed, `Some(true)`
    /// when it was the last byte of the message.
    fn step(&mut self, b: u8) -> Option<bool> {
        match self {
            Chunked::Size { line, .. } if *line >= MAX_LINE => return None,
            Chunked::Size {
                size,
                digits,
                ended,
                line,
            } => {
                *line += 1;
                match (b, *ended, (b as char).to_digit(16)) {
                    (b'\n', _, _) if *digits == 0 => return None,
                    (b'\n', _, _) if *size == 0 => *self = Chunked::Trailer { line: 0, total: 0 },
                    (b'\n', _, _) => *self = Chunked::Data(*size),
                    (_, false, Some(d)) => {
                        *size = size.checked_mul(16)?.checked_add(u64::from(d))?;
                        *digits += 1;
                    }
                    _ if *digits == 0 => return None,
                    _ => *ended = true,
                }
            }
            Chunked::DataCr if b == b'\r' => *self = Chunked::DataLf,
            Chunked::DataLf if b == b'\n' => *self = Chunked::new(),
            Chunked::Trailer { total, .. } if *total >= MAX_TRAILERS => return None,
            Chunked::Trailer { line, total } => {
                *total += 1;
                match b {
                    b'\n' if *line == 0 => return Some(true),
                    b'\n' => *line = 0,
                    b'\r' => {}
                    _ => *line += 1,
                }
            }
            Chunked::Data(_) | Chunked::DataCr | Chunked::DataLf => return None,
        }
        Some(false)
    }
}

impl Default for Chunked {
    fn default() -> Chunked {
        Chunked::new()
    }
}

impl Body {
    /// Follows the body over `bytes`, the next bytes of the connection: how many of them
    /// belong to this message, and what comes after them.
    pub fn advance(&mut self, bytes: &[u8]) -> (usize, Next) {
        match self {
            Body::None => (0, Next::Done),
            Body::Rest => (bytes.len(), Next::Rest),
            Body::Length(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                (n, if *left == 0 { Next::Done } else { Next::More })
            }
            Body::Chunked(chunked) => {
                let mut at = 0;
                while let Some(&b) = bytes.get(at) {
                    if let Chunked::Data(left) = chunked {
                        let rest = bytes.len() - at;
                        let n = usize::try_from(*left).unwrap_or(usize::MAX).min(rest);
                        *left -= n as u64;
                        at += n;
                        if *left == 0 {
                            *chunked = Chunked::DataCr;
                        }
                        continue;
                    }
                    at += 1;
                    match chunked.step(b) {
                        None => return (bytes.len(), Next::Rest),
                        Some(true) => return (at, Next::Done),
                        Some(false) => {}
                    }
                }
                (at, Next::More)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn chunked(bytes: &[u8]) -> (usize, Next) {
        Body::Chunked(Chunked::new()).advance(bytes)
    }

    #[test]
    fn lengths_end_where_they_say() {
        let mut body = Body::Length(5);
        assert_eq!(body.advance(b"abc"), (3, Next::More));
        assert_eq!(body.advance(b"deGET"), (2, Next::Done));
        assert_eq!(Body::Rest.advance(b"xyz"), (3, Next::Rest));
    }

    #[test]
    fn chunked_bodies_end_after_trailers() {
        let body = b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nGET";
        assert_eq!(chunked(body), (body.len() - 3, Next::Done));
        let trailers = b"1\r\na\r\n0\r\nx-t: 1\r\n\r\nGET";
        assert_eq!(chunked(trailers), (trailers.len() - 3, Next::Done));
        // Split anywhere, the same boundary.
        for split in 0..body.len() - 3 {
            let mut b = Body::Chunked(Chunked::new());
            let (n, next) = b.advance(&body[..split]);
            assert_eq!((n, next), (split, Next::More), "{split}");
            assert_eq!(
                b.advance(&body[split..]),
                (body.len() - 3 - split, Next::Done)
            );
        }
    }

    #[test]
    fn unfollowable_chunks_go_to_actix() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\r\nwikiXX",
            b"fffffffffffffffff\r\n",
            &[b'1'; MAX_LINE + 1],
        ] {
            assert_eq!(chunked(bad), (bad.len(), Next::Rest), "{bad:?}");
        }
        let huge = [b"0\r\n".as_slice(), &[b'x'; MAX_TRAILERS + 1]].concat();
        assert_eq!(chunked(&huge), (huge.len(), Next::Rest));
    }
}
