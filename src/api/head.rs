//! The first request head of a client API connection, checked before actix-http reads it
//! (`client-api.md` §1.2, step 2): what actix's h1 dispatcher would refuse itself, bodiless —
//! a head that does not parse, a bad `Content-Length` or `Transfer-Encoding`, more than 96
//! fields, over 128 KiB, or not complete within `head_timeout_ms` — [`HeadCheck`] answers with
//! the JSON body of §1.1 and `Connection: close`, then ends the stream. A head that passes is
//! handed on byte for byte; so is everything after it, and everything on an HTTP/2 connection.
//!
//! Only the first head of a connection is checked: later heads on a kept-alive connection are
//! actix's again (the gate still answers 431 for 65–96 fields or over `max_head_bytes`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_web::http::{Method, Uri};
use actix_web::rt::time::{Sleep, sleep};
use rendezvous_protocol::api::{ApiErrorBody, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limits::ConnectionSlot;

/// actix-http's own limits of a request head (`h1::decoder`: `MAX_HEADERS`, `MAX_BUFFER_SIZE`).
const MAX_FIELDS: usize = 96;
const MAX_BUFFER: usize = 128 * 1024;

/// Why a first head was refused.
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

/// Whether `buf` starts with a complete head actix will accept (`Ok(true)`), needs more bytes
/// (`Ok(false)`), or would be refused. Mirrors actix-http 3.19 `h1::decoder`.
pub fn check(buf: &[u8]) -> Result<bool, HeadRefusal> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if buf.len() >= MAX_BUFFER => {
            return Err(HeadRefusal::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(false),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadRefusal::TooLarge),
        Err(_) => return Err(HeadRefusal::Malformed("not an HTTP/1.x request head")),
    }
    let malformed = |why| Err(HeadRefusal::Malformed(why));
    if Method::from_bytes(req.method.unwrap_or("").as_bytes()).is_err() {
        return malformed("bad method");
    }
    if Uri::try_from(req.path.unwrap_or("")).is_err() {
        return malformed("bad request target");
    }
    let http11 = req.version == Some(1);
    let (mut length, mut hosts, mut encodings, mut chunked) = (None, 0, 0, false);
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
        _ => Ok(true),
    }
}

enum State {
    /// Reading the first head, up to its deadline.
    Reading {
        buf: Vec<u8>,
        deadline: Pin<Box<Sleep>>,
        limit: Duration,
    },
    /// Handing the bytes read while checking on to actix.
    Replaying { buf: Vec<u8>, at: usize },
    /// Writing a refusal; then the stream ends.
    Refusing { out: Vec<u8>, at: usize },
    /// The refusal is written: reads see the end of the stream.
    Ended,
    /// Nothing more to check.
    Through,
}

/// A client API connection as actix-http sees it: the TLS stream, its [`ConnectionSlot`], and
/// on HTTP/1 the check of its first head.
pub struct HeadCheck<S> {
    io: S,
    state: State,
    _slot: ConnectionSlot,
}

impl<S> HeadCheck<S> {
    /// `io` whose first head is checked, to arrive within `limit`.
    pub fn http1(io: S, slot: ConnectionSlot, limit: Duration) -> HeadCheck<S> {
        let state = State::Reading {
            buf: Vec::new(),
            deadline: Box::pin(sleep(limit)),
            limit,
        };
        HeadCheck {
            io,
            state,
            _slot: slot,
        }
    }

    /// `io` handed on unchecked (HTTP/2).
    pub fn through(io: S, slot: ConnectionSlot) -> HeadCheck<S> {
        HeadCheck {
            io,
            state: State::Through,
            _slot: slot,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> HeadCheck<S> {
    /// Reads into the head buffer; the next state once the head is decided.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<State>> {
        let State::Reading {
            buf,
            deadline,
            limit,
        } = &mut self.state
        else {
            return Poll::Ready(Ok(State::Through));
        };
        loop {
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Pending => {
                    ready!(deadline.as_mut().poll(cx));
                    let out = HeadRefusal::Timeout(*limit).response();
                    return Poll::Ready(Ok(State::Refusing { out, at: 0 }));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The end of the stream: actix sees what came, then the end.
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    let buf = std::mem::take(buf);
                    return Poll::Ready(Ok(State::Replaying { buf, at: 0 }));
                }
                Poll::Ready(Ok(())) => buf.extend_from_slice(read.filled()),
            }
            match check(buf) {
                Ok(false) => continue,
                Ok(true) => {
                    let buf = std::mem::take(buf);
                    return Poll::Ready(Ok(State::Replaying { buf, at: 0 }));
                }
                Err(refusal) => {
                    tracing::debug!(%refusal, "first request head refused");
                    let out = refusal.response();
                    return Poll::Ready(Ok(State::Refusing { out, at: 0 }));
                }
            }
        }
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
            match &mut this.state {
                State::Through => return Pin::new(&mut this.io).poll_read(cx, into),
                State::Ended => return Poll::Ready(Ok(())),
                State::Reading { .. } => this.state = ready!(this.poll_head(cx))?,
                State::Replaying { buf, at } => {
                    let rest = buf.get(*at..).unwrap_or_default();
                    if rest.is_empty() {
                        this.state = State::Through;
                        continue;
                    }
                    let n = rest.len().min(into.remaining());
                    into.put_slice(&rest[..n]);
                    *at += n;
                    return Poll::Ready(Ok(()));
                }
                State::Refusing { out, at } => {
                    while let Some(rest) = out.get(*at..).filter(|r| !r.is_empty()) {
                        match ready!(Pin::new(&mut this.io).poll_write(cx, rest))? {
                            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                            n => *at += n,
                        }
                    }
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.state = State::Ended;
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
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
        assert_eq!(check(ok), Ok(true));
        assert_eq!(check(&ok[..20]), Ok(false));
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
    fn a_refusal_is_json_and_closes() {
        let out = HeadRefusal::Malformed("x").response();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"));
        assert!(text.ends_with(r#"{"code":"malformed","message":"malformed request head: x"}"#));
    }
}
