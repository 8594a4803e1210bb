//! One line per check (`ok NAME` or `FAIL NAME: why`), and the requests the checks make.

use std::io::Write;

use awc::http::Method;
use rendezvous_client::ClientError;
use rendezvous_client::http::Http;
use rendezvous_protocol::api::Body;

/// The checks' outcomes, printed as they come.
pub struct Report<'a> {
    out: &'a mut dyn Write,
    /// How many checks failed.
    pub failed: usize,
    /// How many checks passed.
    pub passed: usize,
}

impl<'a> Report<'a> {
    /// A report printing to `out`.
    pub fn new(out: &'a mut dyn Write) -> Self {
        Report {
            out,
            failed: 0,
            passed: 0,
        }
    }

    /// Records the outcome of check `name`; returns the value when it passed.
    pub fn check<T>(&mut self, name: &str, outcome: Result<T, String>) -> Option<T> {
        // A report that cannot be written is lost; the exit status still says what happened.
        match outcome {
            Ok(v) => {
                self.passed += 1;
                let _ = writeln!(self.out, "ok {name}");
                Some(v)
            }
            Err(why) => {
                self.failed += 1;
                let _ = writeln!(self.out, "FAIL {name}: {why}");
                None
            }
        }
    }

    /// Records that `name` was not run because an earlier check it needs failed.
    pub fn skip(&mut self, name: &str, because: &str) {
        self.failed += 1;
        let _ = writeln!(self.out, "FAIL {name}: not run: {because} failed");
    }
}

/// The client API of the target.
pub struct Target {
    /// The transport.
    pub http: Http,
}

impl Target {
    /// `method path` with `body` (CBOR), decoding a success as `R`.
    pub async fn call<R: Body>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> Result<R, String> {
        self.http
            .call(method, path, body, token)
            .await
            .map_err(|e| e.to_string())
    }

    /// `method path` with `body`, which must be refused with `status` and `code`.
    pub async fn refused(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
        (status, code): (u16, &str),
    ) -> Result<(), String> {
        match self.http.send(method, path, body, token, 1 << 16).await {
            Ok(_) => Err(format!("accepted; expected {status} {code}")),
            Err(ClientError::Api {
                status: s,
                code: c,
                message,
                ..
            }) => {
                if s == status && c.as_str() == code {
                    Ok(())
                } else {
                    Err(format!(
                        "answered {s} {} ({message}); expected {status} {code}",
                        c.as_str()
                    ))
                }
            }
            Err(other) => Err(format!("{other}; expected {status} {code}")),
        }
    }
}

/// `body` (a versioned CBOR array) with its version set to `version`.
pub fn with_version(body: &[u8], version: u8) -> Result<Vec<u8>, String> {
    let mut value: ciborium::Value =
        ciborium::from_reader(body).map_err(|e| format!("re-decoding a body: {e}"))?;
    match &mut value {
        ciborium::Value::Array(items) if !items.is_empty() => {
            items[0] = ciborium::Value::Integer(version.into());
        }
        _ => return Err("a body is not an array".into()),
    }
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).map_err(|e| format!("re-encoding a body: {e}"))?;
    Ok(out)
}

/// `bytes` with the last byte flipped: in a signed object's wire form `[payload, signature]`,
/// or a message's, the last byte of the signature.
pub fn flip_last(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(last) = out.last_mut() {
        *last ^= 0x01;
    }
    out
}

/// Compares two byte strings, naming `what` when they differ.
pub fn same(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what} differs: got {}, expected {}",
            hex::encode(got),
            hex::encode(want)
        ))
    }
}
