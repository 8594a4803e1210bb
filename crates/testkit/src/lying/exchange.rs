//! One exchange through the lying host: the request a device sent, the answer it gets, and
//! forwarding to the real server.

use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::topic::{ENTRY_CHANGE, ENTRY_MESSAGE, LogEntry};
use rendezvous_protocol::wire::encode;

use super::Shared;

/// One request as a device sent it to the lying host.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`…
    pub method: String,
    /// The path as sent (percent-encoded).
    pub path: String,
    /// The query string (without `?`).
    pub query: String,
    /// The `Authorization` header, if any.
    pub auth: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// For `/v1/topics/{topic}/{what}`: the topic and `what` (`entries`, `proof/inclusion`…).
    pub fn topic(&self) -> Option<(TopicId, String)> {
        let rest = self.path.strip_prefix("/v1/topics/")?;
        let (segment, what) = rest.split_once('/')?;
        let topic = percent_decode(segment)?.parse().ok()?;
        Some((topic, what.to_owned()))
    }

    /// A post or change to `topic`: its entry.
    pub fn entry_for(&self, topic: &TopicId) -> Option<LogEntry> {
        let (t, what) = self.topic()?;
        let kind = match (self.method.as_str(), what.as_str()) {
            ("POST", "messages") => ENTRY_MESSAGE,
            ("POST", "changes") => ENTRY_CHANGE,
            _ => return None,
        };
        (&t == topic).then(|| LogEntry(kind, self.body.clone()))
    }
}

/// An answer the lying host gives (forwarded or made up).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// `200` with a CBOR body.
    pub fn cbor<T: serde::Serialize>(value: &T) -> Answer {
        Answer {
            status: 200,
            content_type: "application/cbor".into(),
            body: encode(value),
        }
    }

    /// An error answer as the server gives them (`client-api.md` §1).
    pub fn error(status: u16, code: &str) -> Answer {
        Answer {
            status,
            content_type: "application/json".into(),
            body: serde_json::json!({"code": code, "message": "lying host"})
                .to_string()
                .into_bytes(),
        }
    }
}

/// The host's state and this worker's client to the real server.
pub(super) struct Upstream<'a> {
    pub(super) shared: &'a Shared,
    pub(super) client: &'a awc::Client,
}

/// Sends `request` to the real server at `path`; its answer, whatever the status.
pub(super) async fn forward(
    up: &Upstream<'_>,
    request: &Request,
    path: &str,
) -> Result<Answer, String> {
    let mut url = format!("{}{path}", up.shared.upstream);
    if !request.query.is_empty() {
        url = format!("{url}?{}", request.query);
    }
    let method =
        awc::http::Method::from_bytes(request.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = up.client.request(method, &url);
    if let Some(auth) = &request.auth {
        req = req.insert_header(("authorization", auth.as_str()));
    }
    let sent = if request.body.is_empty() && request.method == "GET" {
        req.send().await
    } else {
        req.insert_header(("content-type", "application/cbor"))
            .send_body(request.body.clone())
            .await
    };
    let mut resp = sent.map_err(|e| e.to_string())?;
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let body = resp
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status: resp.status().as_u16(),
        content_type,
        body: body.to_vec(),
    })
}

/// Decodes `%XX` escapes; `None` for a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
