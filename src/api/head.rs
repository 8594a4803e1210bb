//! The request heads of a client API connection, checked before actix-http reads them
//! (`client-api.md` §1.2, step 2): what actix's h1 dispatcher would refuse itself, bodiless —
//! a head that does not parse, a bad `Content-Length` or `Transfer-Encoding`, more than 96
//! fields, over 128 KiB, or a first head not complete within `head_timeout_ms` — [`HeadCheck`]
//! answers with the JSON body of §1.1 and `Connection: close`, then ends the stream. A head that
//! passes is handed on byte for byte, and so is its body, followed ([`super::framing`]) to where
//! the next head starts. Everything on an HTTP/2 connection is handed on unchecked.
//!
//! A refused later head is never interleaved with the answers to the requests before it: actix
//! sees the end of the stream after them, and the refusal is written when actix, done writing,
//! shuts the connection down. The head timeout is the first head's; later heads wait at most
//! actix's `keep_alive`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_web::http::{Method, Uri};
use actix_web::rt::time::{Sleep, sleep};
use rendezvous_protocol::api::{ApiErrorBody, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{Body, Chunked, Next};
use crate::limits::ConnectionSlot;

/// actix-http's own limits of a request head (`h1::decoder`: `MAX_HEADERS`, `MAX_BUFFER_SIZE`).
const MAX_FIELDS: usize = 96;
const MAX_BUFFER: usize = 128 * 1024;

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadRefusal {
    /// The head does not parse as HTTP/1.x, or its framing fields are contradictory.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// More than 96 fields, or over 128 KiB.
    #[error("request head over {MAX_FIELDS} fields or {MAX_BUFFER} bytes")]
    TooLarge,
    /// Not complete within `head_timeout_ms`.
    #[error("request head not complete within {0:?}")]
    Timeout(Duration),
}

impl HeadRefusal {
    fn code(&self) -> ErrorCode {
        match self {
            HeadRefusal::Malformed(_) => ErrorCode::Malformed,
            HeadRefusal::TooLarge => ErrorCode::HeadersTooLarge,
            HeadRefusal::Timeout(_) => ErrorCode::Timeout,
        }
    }

    /// The whole HTTP/1.1 response: status, JSON body, `Connection: close`.
    pub fn response(&self) -> Vec<u8> {
        let code = self.code();
        let body = ApiErrorBody {
            code: code.as_str().to_owned(),
            message: self.to_string(),
        };
        // A struct of two strings always serialises.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let status = actix_web::http::StatusCode::from_u16(code.status())
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// A head that passed [`check`]: its length and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, through its empty line.
    pub len: usize,
    /// The body that follows, as actix frames it.
    pub body: Body,
}

/// Whether `buf` starts with a complete head actix will accept (`Ok(Some(_))`), needs more
/// bytes (`Ok(None)`), or would be refused. Mirrors actix-http 3.19 `h1::decoder`.
pub fn check(buf: &[u8]) -> Result<Option<Head>, HeadRefusal> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_BUFFER => {
            return Err(HeadRefusal::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadRefusal::TooLarge),
        Err(_) => return Err(HeadRefusal::Malformed("not an HTTP/1.x request head")),
    };
    let malformed = |why| Err(HeadRefusal::Malformed(why));
    if Method::from_bytes(req.method.unwrap_or("").as_bytes()).is_err() {
        return malformed("bad method");
    }
    if Uri::try_from(req.path.unwrap_or("")).is_err() {
        return malformed("bad request target");
    }
    let http11 = req.version == Some(1);
    let (mut length, mut hosts, mut encodings, mut chunked) = (None, 0, 0, false);
    let mut upgrade = req.method == Some("CONNECT");
    for field in req.headers.iter() {
        let value = std::str::from_utf8(field.value).map(str::trim);
        if field.name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3: one value of digits only.
            let parsed = value
                .ok()
                .filter(|v| !v.starts_with('+'))
                .and_then(|v| v.parse::<u64>().ok());
            match (length, parsed) {
                (None, Some(n)) => length = Some(n),
                (Some(_), _) => return malformed("more than one Content-Length"),
                (_, None) => return malformed("Content-Length is not a number"),
            }
        } else if field.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            encodings += 1;
            match value {
                Ok(v) if v.eq_ignore_ascii_case("chunked") => chunked = true,
                Ok(v) if v.eq_ignore_ascii_case("identity") => {}
                _ => return malformed("Transfer-Encoding other than chunked"),
            }
        } else if field.name.eq_ignore_ascii_case("upgrade") {
            // Wider than actix's (`websocket` only): any upgrade ends the checking.
            upgrade = true;
        }
    }
    match () {
        _ if hosts > 1 => malformed("more than one Host"),
        _ if http11 && hosts == 0 => malformed("HTTP/1.1 without Host"),
        _ if encodings > 1 => malformed("more than one Transfer-Encoding"),
        _ if encodings > 0 && !http11 => malformed("Transfer-Encoding in HTTP/1.0"),
        _ if encodings > 0 && !chunked => malformed("Transfer-Encoding is not chunked"),
        _ if encodings > 0 && length.is_some() => {
            malformed("both Content-Length and Transfer-Encoding")
        }
        _ if !http11 && req.method == Some("POST") && length.is_none() => {
            malformed("HTTP/1.0 POST without Content-Length")
        }
        // RFC 9112 §6.3, in actix's order: chunked, upgrade, length.
        _ if chunked => Ok(Some(Head {
            len,
            body: Body::Chunked(Chunked::new()),
        })),
        _ if upgrade => Ok(Some(Head {
            len,
            body: Body::Rest,
        })),
        _ => Ok(Some(Head {
            len,
            body: length.filter(|&n| n > 0).map_or(Body::None, Body::Length),
        })),
    }
}

/// Where the connection is.
enum State {
    /// Reading a head; the first has a deadline.
    Head {
        deadline: Option<Pin<Box<Sleep>>>,
        limit: Duration,
    },
    /// Following a body to the next head.
    Body(Body),
    /// The first head is refused: writing the refusal; then the stream ends.
    Refusing { out: Vec<u8>, at: usize },
    /// A later head is refused: actix sees the end of the stream, and the refusal is written
    /// once actix has written its answers and shuts the connection down.
    Refused { out: Vec<u8>, at: usize },
    /// The refusal is written: reads see the end of the stream.
    Ended,
    /// Nothing more to check.
    Through,
}

/// A client API connection as actix-http sees it: the TLS stream, its [`ConnectionSlot`], and
/// on HTTP/1 the check of each request head.
pub struct HeadCheck<S> {
    io: S,
    state: State,
    /// Bytes read from `io`: `buf[..at]` handed to actix, `buf[at..cleared]` checked and to be
    /// handed, `buf[cleared..]` not yet decided. At most a head's limit plus one read.
    buf: Vec<u8>,
    at: usize,
    cleared: usize,
    _slot: ConnectionSlot,
}

/// Bytes read from the stream at a time while checking.
const READ: usize = 8192;

impl<S> HeadCheck<S> {
    /// `io` whose heads are checked, the first to arrive within `limit`.
    pub fn http1(io: S, slot: ConnectionSlot, limit: Duration) -> HeadCheck<S> {
        let deadline = Some(Box::pin(sleep(limit)));
        HeadCheck::new(io, slot, State::Head { deadline, limit })
    }

    /// `io` handed on unchecked (HTTP/2).
    pub fn through(io: S, slot: ConnectionSlot) -> HeadCheck<S> {
        HeadCheck::new(io, slot, State::Through)
    }

    fn new(io: S, slot: ConnectionSlot, state: State) -> HeadCheck<S> {
        HeadCheck {
            io,
            state,
            buf: Vec::new(),
            at: 0,
            cleared: 0,
            _slot: slot,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> HeadCheck<S> {
    /// Reads more of the stream into `buf`: `false` at its end. While the first head is read,
    /// its deadline passing makes the timeout refusal.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut chunk = [0u8; READ];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut read) {
            Poll::Pending => {
                if let State::Head {
                    deadline: Some(deadline),
                    limit,
                } = &mut self.state
                {
                    ready!(deadline.as_mut().poll(cx));
                    let out = HeadRefusal::Timeout(*limit).response();
                    self.state = State::Refusing { out, at: 0 };
                    return Poll::Ready(Ok(true));
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(())) => {
                self.buf.extend_from_slice(read.filled());
                Poll::Ready(Ok(true))
            }
        }
    }

    /// Decides the undecided bytes, reading more when there are none: `false` at the end of
    /// the stream with nothing left to hand on.
    fn poll_decide(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let undecided = self.buf.get(self.cleared..).unwrap_or_default();
        match &mut self.state {
            State::Head { deadline, .. } => match check(undecided) {
                Ok(Some(head)) => {
                    self.cleared += head.len;
                    if head.body != Body::None {
                        self.state = State::Body(head.body);
                    } else if deadline.is_some() {
                        *deadline = None;
                    }
                }
                Ok(None) => {
                    if !ready!(self.poll_fill(cx))? {
                        // The end of the stream: actix sees what came, then the end.
                        self.cleared = self.buf.len();
                        self.state = State::Through;
                        return Poll::Ready(Ok(self.at < self.cleared));
                    }
                }
                Err(refusal) => {
                    let first = deadline.is_some();
                    tracing::debug!(%refusal, first, "request head refused");
                    let out = refusal.response();
                    self.state = if first {
                        State::Refusing { out, at: 0 }
                    } else {
                        State::Refused { out, at: 0 }
                    };
                }
            },
            State::Body(_) if undecided.is_empty() => {
                if !ready!(self.poll_fill(cx))? {
                    self.state = State::Through;
                    return Poll::Ready(Ok(false));
                }
            }
            State::Body(body) => {
                let (n, next) = body.advance(undecided);
                self.cleared += n;
                match next {
                    Next::More => {}
                    Next::Done => {
                        let (deadline, limit) = (None, Duration::ZERO);
                        self.state = State::Head { deadline, limit };
                    }
                    Next::Rest => self.state = State::Through,
                }
            }
            State::Through => self.cleared = self.buf.len(),
            State::Refusing { .. } | State::Refused { .. } | State::Ended => {}
        }
        Poll::Ready(Ok(true))
    }

    /// Writes the refusal out and flushes it; then the stream has ended.
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (State::Refusing { out, at } | State::Refused { out, at }) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        while let Some(rest) = out.get(*at..).filter(|r| !r.is_empty()) {
            match ready!(Pin::new(&mut self.io).poll_write(cx, rest))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => *at += n,
            }
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.state = State::Ended;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadCheck<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        into: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(ready) = this
                .buf
                .get(this.at..this.cleared)
                .filter(|r| !r.is_empty())
            {
                let n = ready.len().min(into.remaining());
                into.put_slice(&ready[..n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            if this.at > 0 {
                this.buf.drain(..this.at);
                this.cleared -= this.at;
                this.at = 0;
            }
            match &this.state {
                State::Through if this.buf.is_empty() => {
                    return Pin::new(&mut this.io).poll_read(cx, into);
                }
                State::Ended | State::Refused { .. } => return Poll::Ready(Ok(())),
                State::Refusing { .. } => {
                    ready!(this.poll_refusal(cx))?;
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                }
                _ => {
                    if !ready!(this.poll_decide(cx))? {
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadCheck<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// actix shuts the connection down after its last write: a later head's refusal goes first.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.state, State::Refused { .. }) {
            ready!(this.poll_refusal(cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn heads_actix_would_refuse_are_refused() {
        let ok = b"GET /v1/status HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(check(ok).unwrap().map(|h| h.len), Some(ok.len()));
        assert_eq!(check(&ok[..20]), Ok(None));
        let bad = |head: &str| matches!(check(head.as_bytes()), Err(HeadRefusal::Malformed(_)));
        assert!(bad(
            "GET /v1/status HTTP/1.1\r\nhost: a\r\ncontent-length: abc\r\n\r\n"
        ));
        assert!(bad(
            "GET /v1/status HTTP/1.1\r\nhost: a\r\ncontent-length: +1\r\n\r\n"
        ));
        assert!(bad(
            "GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n"
        ));
        assert!(bad(
            "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 1\r\n\r\n"
        ));
        assert!(bad("GET / HTTP/1.1\r\n\r\n"));
        assert!(bad("GET / HTTP/9.9\r\nhost: a\r\n\r\n"));
        assert!(bad("\x01GET / HTTP/1.1\r\nhost: a\r\n\r\n"));
        let mut many = String::from("GET / HTTP/1.1\r\nhost: a\r\n");
        for i in 0..MAX_FIELDS {
            many.push_str(&format!("x-{i}: v\r\n"));
        }
        assert_eq!(check(many.as_bytes()), Err(HeadRefusal::TooLarge));
        let long = format!("GET / HTTP/1.1\r\nx: {}", "v".repeat(MAX_BUFFER));
        assert_eq!(check(long.as_bytes()), Err(HeadRefusal::TooLarge));
    }

    #[test]
    fn a_head_says_where_its_body_ends() {
        let body = |head: &str| check(head.as_bytes()).unwrap().unwrap().body;
        assert_eq!(body("GET / HTTP/1.1\r\nhost: a\r\n\r\n"), Body::None);
        assert_eq!(
            body("GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"),
            Body::None
        );
        assert_eq!(
            body("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 7\r\n\r\n"),
            Body::Length(7)
        );
        let chunked = "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(body(chunked), Body::Chunked(Chunked::new()));
        let ws = "GET /v1/stream HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
        assert_eq!(body(ws), Body::Rest);
        assert_eq!(body("CONNECT a:1 HTTP/1.1\r\nhost: a\r\n\r\n"), Body::Rest);
        let two = b"GET / HTTP/1.1\r\nhost: a\r\n\r\nGET /x HTTP/1.1\r\n";
        assert_eq!(check(two).unwrap().unwrap().len, 27);
    }

    #[test]
    fn a_refusal_is_json_and_closes() {
        let out = HeadRefusal::Malformed("x").response();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"));
        assert!(text.ends_with(r#"{"code":"malformed","message":"malformed request head: x"}"#));
    }
}
