//! A federation transaction sent as a peer sends it (`federation-api.md` §4): what a test sends
//! to a federation listener to see what it accepts.

use std::path::Path;

use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::federation::{
    Event, EventId, EventKind, Transaction, TransactionResponse,
};
use rendezvous_protocol::ids::{ServerName, TopicId};
use rendezvous_protocol::wire::Verified;

/// `PUT send/{txn}` to `to` (the SNI and `Host`) over `client` (a [`crate::ca::peer_client`]),
/// naming the transaction's origin in `X-Rdv-Origin` as a peer does; the status and body, or
/// `Err` when the connection fails.
pub async fn send(
    client: &awc::Client,
    to: &str,
    txn: &Transaction,
) -> Result<(u16, Vec<u8>), String> {
    send_as(client, to, Some(txn.origin.as_str()), txn)
        .await
        .map(|(status, _, body)| (status, body))
}

/// [`send`] with `origin` in `X-Rdv-Origin` (none: no header), whatever the transaction says;
/// the status, the `Retry-After` and the body.
pub async fn send_as(
    client: &awc::Client,
    to: &str,
    origin: Option<&str>,
    txn: &Transaction,
) -> Result<(u16, Option<u64>, Vec<u8>), String> {
    let mut req = client
        .put(format!(
            "https://{to}:8448/_rdv/federation/v1/send/{}",
            txn.txn_id
        ))
        .insert_header(("Content-Type", "application/cbor"));
    if let Some(origin) = origin {
        req = req.insert_header(("X-Rdv-Origin", origin));
    }
    let mut resp = req
        .send_body(txn.to_wire())
        .await
        .map_err(|e| e.to_string())?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = resp
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok((resp.status().as_u16(), retry_after, body.to_vec()))
}

/// A transaction from `from` to `to` carrying `events`.
pub fn transaction(id: &str, from: &str, to: &str, events: &[&Verified<Event>]) -> Transaction {
    Transaction::new(
        id.into(),
        name(from),
        name(to),
        events.iter().map(|e| e.signed_bytes().clone()).collect(),
    )
}

/// An event of `kind` about `topic` from `from` to `to`, signed by `key` now.
pub fn event(
    from: &str,
    to: &str,
    kind: EventKind,
    topic: &TopicId,
    payload: Vec<u8>,
    key: &ServerKey,
) -> Verified<Event> {
    Event::sign(
        &name(from),
        &name(to),
        kind,
        Some(topic),
        payload,
        rendezvous::state::now(),
        key,
    )
}

/// The answer to each event of a `200` transaction response: `(id, status, code)`.
pub fn results(body: &[u8]) -> Vec<(EventId, u16, String)> {
    TransactionResponse::from_wire(body)
        .unwrap()
        .results
        .into_iter()
        .map(|r| (EventId(r.id), r.status, r.code))
        .collect()
}

/// A transaction id no other test run uses.
pub fn fresh_id() -> String {
    let suffix: [u8; 8] = rendezvous_protocol::crypto::random_array();
    format!("t{}", hex::encode(suffix))
}

/// A server's signing key, from its data directory's `server.key` seed.
pub fn server_key(data_dir: &Path) -> ServerKey {
    let seed: [u8; 32] = std::fs::read(data_dir.join("server.key"))
        .unwrap()
        .try_into()
        .unwrap();
    ServerKey::from_seed(&seed)
}

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}
