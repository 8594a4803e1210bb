//! What a request is for, in the user's words: errors name the operation ("fetch the checkpoint
//! of !abc:a.example"), never the percent-encoded path (`/v1/topics/%21abc%3Aa.example/…`).
//!
//! One table over the client API's routes (`client-api.md` §2–7); a path it does not know is
//! shown as `METHOD path` with its segments decoded.

use awc::http::Method;

/// Describes `method path` as what it does, with ids decoded: the text follows "to" or "could
/// not" in an error message.
pub fn operation(method: &Method, path: &str) -> String {
    let route = path.split('?').next().unwrap_or(path);
    let segments: Vec<String> = route
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    let known = match parts.as_slice() {
        ["v1", "status"] if get => Some("fetch the server's status".to_owned()),
        ["v1", "register"] if post => Some("register the account".to_owned()),
        ["v1", "login", "challenge"] if post => Some("start logging in this device".to_owned()),
        ["v1", "login"] if post => Some("log in this device".to_owned()),
        ["v1", "prekeys"] if post => Some("upload pre keys".to_owned()),
        ["v1", "prekeys", "claim"] if post => {
            Some("claim pre keys of this account's other devices".to_owned())
        }
        ["v1", "devices"] if get => Some("list this account's devices".to_owned()),
        ["v1", "devices"] if post => Some("add this device to the account".to_owned()),
        ["v1", "devices", "revoke"] if post => Some("remove the device".to_owned()),
        ["v1", "keys", "status"] if get => Some("check the key stock".to_owned()),
        ["v1", "topic-keys"] if post => Some("upload topic keys".to_owned()),
        ["v1", "topic-keys", "claim"] if post => Some("claim the members' topic keys".to_owned()),
        ["v1", "inbox"] if get => Some("fetch the inbox".to_owned()),
        ["v1", "inbox", "ack"] if post => Some("acknowledge inbox items".to_owned()),
        ["v1", "users", user, "identity"] if get => {
            Some(format!("fetch the identity key of {user}"))
        }
        ["v1", "servers", server, "keys"] if get => {
            Some(format!("fetch the signing key of server {server}"))
        }
        ["v1", "link"] if post => Some("open a device link".to_owned()),
        ["v1", "link", _, "request"] if get => {
            Some("wait for the new device's link request".to_owned())
        }
        ["v1", "link", _, "request"] if post => Some("send the link request".to_owned()),
        ["v1", "link", _, "response"] if get => Some("wait for the link answer".to_owned()),
        ["v1", "link", _, "response"] if post => Some("send the link answer".to_owned()),
        ["v1", "topics"] if get => Some("list this account's topics".to_owned()),
        ["v1", "topics"] if post => Some("create the topic".to_owned()),
        ["v1", "topics", topic, rest @ ..] => topic_operation(method, topic, rest),
        ["v1", "sync"] if get => Some("sync this device's topics".to_owned()),
        ["v1", "stream"] if get => Some("open the live stream".to_owned()),
        _ => None,
    };
    known.unwrap_or_else(|| format!("{method} /{}", segments.join("/")))
}

fn topic_operation(method: &Method, topic: &str, rest: &[&str]) -> Option<String> {
    let get = *method == Method::GET;
    let text = match rest {
        ["checkpoint"] if get => format!("fetch the checkpoint of {topic}"),
        ["entries"] if get => format!("fetch the log entries of {topic}"),
        ["proof", "consistency"] if get => format!("fetch a consistency proof for {topic}"),
        ["proof", "inclusion"] if get => format!("fetch an inclusion proof for {topic}"),
        ["witnesses"] if get => format!("fetch the other views of the log of {topic}"),
        ["cursor"] if *method == Method::PUT => format!("save the read position in {topic}"),
        ["changes"] if *method == Method::POST => format!("post a change to {topic}"),
        ["messages"] if *method == Method::POST => format!("post a message to {topic}"),
        _ => return None,
    };
    Some(text)
}

/// Undoes [`rendezvous_protocol::api::encode_segment`] (`%XX` escapes; anything else as is).
pub fn decode_segment(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rendezvous_protocol::api::encode_segment;

    #[test]
    fn operations_name_ids_decoded() {
        let topic = "!abc:a.example:8448";
        let path = format!("/v1/topics/{}/checkpoint", encode_segment(topic));
        assert_eq!(
            operation(&Method::GET, &path),
            "fetch the checkpoint of !abc:a.example:8448"
        );
        let path = format!(
            "/v1/topics/{}/entries?from=0&limit=500",
            encode_segment(topic)
        );
        assert_eq!(
            operation(&Method::GET, &path),
            "fetch the log entries of !abc:a.example:8448"
        );
        let path = format!("/v1/users/{}/identity", encode_segment("@bob:b.example"));
        assert_eq!(
            operation(&Method::GET, &path),
            "fetch the identity key of @bob:b.example"
        );
        assert_eq!(
            operation(&Method::POST, "/v1/login/challenge"),
            "start logging in this device"
        );
        // Unknown routes keep method and path, decoded.
        assert_eq!(
            operation(&Method::DELETE, "/v1/x/%40al%20ice"),
            "DELETE /v1/x/@al ice"
        );
        assert_eq!(decode_segment("%zz%4"), "%zz%4");
    }
}
