//! A small typed client for the client–server API (`federation-spec/client-api.md`) over awc.
//!
//! Bodies are the [`rendezvous_protocol::api`] types, CBOR both ways ([`Body::to_cbor`] / [`Body::from_cbor`]);
//! error answers are the JSON `{"code", "message"}` of §1.1 and become [`ClientError::Api`].
//! Errors name the request by what it was for ([`operation`]). The awc client is
//! single-threaded (it lives on the current actix-rt system).

mod operation;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use awc::http::{Method, StatusCode};

use super::ClientError;
use super::tls::{PinCheck, Trust, client_config_checked};
use rendezvous_protocol::api::{ApiErrorBody, Body, ErrorCode, StreamFrame};

pub use operation::{decode_segment, operation};
pub use stream::FrameStream;

/// Largest error body read.
const MAX_ERROR_BODY: usize = 8 * 1024;
/// Request timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS connection to one server.
pub struct Http {
    client: awc::Client,
    base: String,
    pin: Option<PinCheck>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Checks a server URL: `https://host[:port]`, no path, query or user info; returns it without
/// a trailing slash.
pub fn normalize_url(url: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: awc::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("the scheme must be https"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user info is not allowed"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("give the server's base URL without a path"));
    }
    Ok(format!("https://{}", authority.as_str()))
}

pub use rendezvous_protocol::api::encode_segment;

/// Turns an error answer into a [`ClientError`]; `what` is what the request was for.
pub fn error_from_response(what: &str, status: u16, body: &[u8]) -> ClientError {
    if let Ok(e) = serde_json::from_slice::<ApiErrorBody>(body)
        && let Some(code) = ErrorCode::parse(&e.code)
    {
        return ClientError::Api {
            what: what.to_owned(),
            code,
            status,
            message: one_line(&e.message),
        };
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    ClientError::UnexpectedStatus {
        what: what.to_owned(),
        status,
        body: one_line(&text),
    }
}

pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Http {
    /// A client for the server at `base_url` (`https://host[:port]`), trusting its certificate
    /// as `trust` says.
    pub fn new(base_url: &str, trust: &Trust) -> Result<Http, ClientError> {
        let base = normalize_url(base_url)?;
        let (tls, pin) = client_config_checked(trust)?;
        let connector = awc::Connector::new()
            .rustls_0_23(Arc::new(tls))
            .timeout(TIMEOUT);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(TIMEOUT)
            .finish();
        Ok(Http { client, base, pin })
    }

    /// The error for a connection that failed: a pinned certificate the server did not present,
    /// or the transport error.
    fn transport(&self, what: &str, error: &dyn std::fmt::Display) -> ClientError {
        if let Some((pinned, presented)) = self.pin.as_ref().and_then(PinCheck::mismatch) {
            return ClientError::PinMismatch {
                server: self.base.clone(),
                pinned: pinned.to_string(),
                presented: presented.to_string(),
            };
        }
        ClientError::Transport {
            server: self.base.clone(),
            what: what.to_owned(),
            reason: one_line(&error.to_string()),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the body of a successful answer (at most `limit` bytes).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{}", self.base, path);
        let what = operation(&method, path);
        let mut req = self.client.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let transport = |e: &dyn std::fmt::Display| self.transport(&what, e);
        let sent = match body {
            Some(b) => {
                req.insert_header(("content-type", "application/cbor"))
                    .send_body(b)
                    .await
            }
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| transport(&e))?;
        let status = resp.status();
        if status.is_success() {
            let bytes = resp.body().limit(limit).await.map_err(|e| transport(&e))?;
            return Ok(bytes.to_vec());
        }
        let bytes = resp
            .body()
            .limit(MAX_ERROR_BODY)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Err(error_from_response(&what, status.as_u16(), &bytes))
    }

    /// `method path` with a CBOR body; decodes the CBOR answer as `R`.
    pub async fn call<R: Body>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> Result<R, ClientError> {
        let bytes = self
            .send(method.clone(), path, body, token, R::MAX_LEN)
            .await?;
        R::from_cbor(&bytes).map_err(|error| ClientError::Malformed {
            what: format!("reply when asked to {}", operation(&method, path)),
            error,
        })
    }

    /// `GET path` answered with JSON (status endpoints).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let bytes = self.send(Method::GET, path, None, None, 64 * 1024).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Misbehaved(format!(
                "its answer when asked to {} is not the expected JSON: {e}",
                operation(&Method::GET, path)
            ))
        })
    }

    /// Opens the push stream (`GET /v1/stream`, WebSocket).
    pub async fn stream(&self, token: &str) -> Result<FrameStream, ClientError> {
        let url = format!("{}/v1/stream", self.base);
        let (resp, framed) = self
            .client
            .ws(&url)
            .bearer_auth(token)
            .max_frame_size(StreamFrame::MAX_LEN)
            .connect()
            .await
            .map_err(|e| match e {
                awc::error::WsClientError::InvalidResponseStatus(s) => {
                    status_error("open the live stream", s)
                }
                other => self.transport("open the live stream", &other),
            })?;
        drop(resp);
        Ok(FrameStream::new(Box::pin(framed), self.base.clone()))
    }
}

fn status_error(what: &str, status: StatusCode) -> ClientError {
    if status == StatusCode::UNAUTHORIZED {
        return ClientError::Api {
            what: what.to_owned(),
            code: ErrorCode::Unauthorized,
            status: status.as_u16(),
            message: "token refused".into(),
        };
    }
    ClientError::UnexpectedStatus {
        what: what.to_owned(),
        status: status.as_u16(),
        body: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            normalize_url("https://a.example:8448/").unwrap(),
            "https://a.example:8448"
        );
        assert_eq!(
            normalize_url("https://a.example").unwrap(),
            "https://a.example"
        );
        for bad in [
            "http://a.example",
            "a.example",
            "https://a.example/x",
            "https://u@a.example",
            "https://a.example/?q",
            "",
        ] {
            assert!(
                matches!(normalize_url(bad), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(
            encode_segment("!abc:a.example:8448"),
            "%21abc%3Aa.example%3A8448"
        );
        assert_eq!(encode_segment("@al ice"), "%40al%20ice");
    }

    #[test]
    fn error_bodies_map_to_codes() {
        let e = error_from_response(
            "POST /v1/register",
            403,
            br#"{"code":"pin_invalid","message":"pin used\nalready"}"#,
        );
        assert_eq!(e.code(), Some(ErrorCode::PinInvalid));
        let text = e.to_string();
        assert!(!text.contains('\n'));
        assert!(text.contains("pin_invalid"), "{text}");
        let e = error_from_response("GET /x", 502, b"<html>bad gateway</html>");
        assert!(matches!(
            e,
            ClientError::UnexpectedStatus { status: 502, .. }
        ));
        let e = error_from_response("GET /x", 409, br#"{"code":"no_such_code","message":"?"}"#);
        assert!(e.code().is_none());
    }
}
