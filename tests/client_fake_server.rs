//! The client against an in-process fake homeserver (real TLS on loopback, pinned certificate).
//!
//! The fake implements just enough of `client-api.md` to run the client's flows, using the
//! protocol library the way a homeserver would (topic state machine, tag log, signed
//! checkpoints). It can lie on request, so the client's checks are tested too: a dropped entry
//! is reported missing, a tampered entry is marked, a forked log is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_bytes::ByteBuf;

use rendezvous::api::*;
use rendezvous::certs::{DeviceCert, Registration};
use rendezvous::client::tls::{Fingerprint, Trust};
use rendezvous::client::{Client, ClientError, EntryContent};
use rendezvous::crypto::transcript::LABEL_DEVICE_LOGIN;
use rendezvous::crypto::{IdentityPublicKey, ServerKey};
use rendezvous::devices::TopicKeyUpload;
use rendezvous::ids::{TopicId, UserId};
use rendezvous::tlog::{
    Checkpoint, LeafIndex, LogHash, MemoryNodeStore, SignedCheckpoint, Tree, TreeSize, leaf_hash,
};
use rendezvous::topic::{History, LogEntry, Replayer, Role, log_origin};
use rendezvous::wire::{Signed, SignedBytes, VERSION};

#[derive(Default)]
struct Tamper {
    drop_index: Option<u64>,
    corrupt_index: Option<u64>,
    fork: bool,
}

struct UserRec {
    registration: SignedBytes,
    ik: IdentityPublicKey,
    devices: Vec<SignedBytes>,
    topic_keys: Vec<SignedBytes>,
}

struct TopicRec {
    entries: Vec<Vec<u8>>,
    tree: Tree<MemoryNodeStore>,
    replayer: Replayer,
}

#[derive(Default)]
struct LinkSlot {
    request: Option<ByteBuf>,
    response: Option<ByteBuf>,
}

struct Fake {
    links: HashMap<String, LinkSlot>,
    cursors: HashMap<(String, String), u64>,
    name: String,
    sk: ServerKey,
    users: HashMap<String, UserRec>,
    tokens: HashMap<String, String>,
    topics: HashMap<String, TopicRec>,
    tamper: Tamper,
}

fn cbor<B: Body>(b: &B) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/cbor")
        .body(b.to_cbor())
}

fn err(code: ErrorCode, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code.status()).unwrap()).json(
        ApiErrorBody {
            code: code.as_str().into(),
            message: message.into(),
        },
    )
}

fn decode_path(p: &str) -> String {
    let b = p.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&p[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn query(req: &HttpRequest, key: &str) -> u64 {
    req.query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

impl Fake {
    fn checkpoint(&self, topic: &str) -> String {
        let t = &self.topics[topic];
        let id: TopicId = topic.parse().unwrap();
        let root = if self.tamper.fork {
            leaf_hash(b"another history")
        } else {
            t.tree.root()
        };
        let c = Checkpoint::new(&log_origin(&id), t.tree.size(), root, 1_800_000_000).unwrap();
        SignedCheckpoint::sign(&c, &self.sk, &self.name)
            .unwrap()
            .to_note()
    }

    fn append(&mut self, topic: &str, entry: LogEntry) -> HttpResponse {
        let t = self.topics.get_mut(topic).unwrap();
        let (_, leaf) = match t.replayer.push(&entry) {
            Ok(x) => x,
            Err(e) => return err(ErrorCode::ChangeRejected, &e.to_string()),
        };
        let index = t.tree.append(&leaf).unwrap().0;
        t.entries.push(entry.to_wire());
        let checkpoint = self.checkpoint(topic);
        cbor(&AppendResponse {
            version: VERSION,
            index,
            checkpoint,
        })
    }

    fn handle(&mut self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let method = req.method().as_str().to_owned();
        let path = decode_path(req.path());
        let caller = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| self.tokens.get(t).cloned());
        match (method.as_str(), path.as_str()) {
            ("GET", "/v1/status") => {
                return HttpResponse::Ok().json(serde_json::json!({
                    "server_name": self.name, "version": "fake",
                    "server_key": base64_encode(self.sk.public().as_bytes()),
                }));
            }
            ("POST", "/v1/register") => {
                let r = RegisterRequest::from_cbor(body).unwrap();
                if r.pin == "bad" {
                    return err(ErrorCode::PinInvalid, "pin unknown");
                }
                let reg =
                    Signed::<Registration>::from_signed_bytes(r.registration.clone()).unwrap();
                let ik = reg.decode_unverified().unwrap().identity_key;
                let reg = reg.verify(&ik).unwrap();
                let user = reg.user.clone();
                Signed::<DeviceCert>::from_signed_bytes(r.device_cert.clone())
                    .unwrap()
                    .verify(&ik)
                    .unwrap();
                self.users.insert(
                    user.to_string(),
                    UserRec {
                        registration: r.registration,
                        ik,
                        devices: vec![r.device_cert],
                        topic_keys: Vec::new(),
                    },
                );
                return cbor(&RegisterResponse {
                    version: VERSION,
                    user,
                });
            }
            ("POST", "/v1/login/challenge") => {
                ChallengeRequest::from_cbor(body).unwrap();
                return cbor(&ChallengeResponse {
                    version: VERSION,
                    challenge: [7; 32],
                    expires: 0,
                });
            }
            ("POST", "/v1/login") => {
                let r = LoginRequest::from_cbor(body).unwrap();
                if r.device_key
                    .verify(
                        LABEL_DEVICE_LOGIN,
                        &[
                            self.name.as_bytes(),
                            r.user.as_str().as_bytes(),
                            &r.challenge,
                        ],
                        &r.signature,
                    )
                    .is_err()
                {
                    return err(ErrorCode::BadSignature, "login signature");
                }
                let token = format!("t{}", self.tokens.len());
                self.tokens.insert(token.clone(), r.user.to_string());
                return cbor(&LoginResponse {
                    version: VERSION,
                    token,
                    expires: 0,
                });
            }
            ("POST", "/v1/devices") => {
                let r = AddDeviceRequest::from_cbor(body).unwrap();
                let cert = Signed::<DeviceCert>::from_signed_bytes(r.device_cert.clone()).unwrap();
                let user = cert.decode_unverified().unwrap().user.to_string();
                let rec = self.users.get_mut(&user).unwrap();
                if cert.verify(&rec.ik).is_err() {
                    return err(ErrorCode::BadSignature, "device certificate");
                }
                rec.devices.push(r.device_cert);
                return cbor(&Empty::default());
            }
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/v1/users/") {
            let user = rest.strip_suffix("/identity").unwrap();
            return match self.users.get(user) {
                Some(rec) => cbor(&IdentityResponse {
                    version: VERSION,
                    registration: rec.registration.clone(),
                }),
                None => err(ErrorCode::NotFound, "no such user"),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/link/") {
            let (id, what) = rest.split_once('/').unwrap();
            let slot = self.links.entry(id.to_owned()).or_default();
            match (method.as_str(), what, caller.is_some()) {
                ("POST", "request", _) => {
                    slot.request = Some(LinkMessage::from_cbor(body).unwrap().body);
                    return cbor(&Empty::default());
                }
                ("GET", "response", _) => {
                    return match slot.response.take() {
                        Some(body) => cbor(&LinkMessage {
                            version: VERSION,
                            body,
                        }),
                        None => err(ErrorCode::NotFound, "no response yet"),
                    };
                }
                ("GET", "request", true) => {
                    return match slot.request.clone() {
                        Some(body) => cbor(&LinkMessage {
                            version: VERSION,
                            body,
                        }),
                        None => err(ErrorCode::NotFound, "no request yet"),
                    };
                }
                ("POST", "response", true) => {
                    slot.response = Some(LinkMessage::from_cbor(body).unwrap().body);
                    return cbor(&Empty::default());
                }
                _ => {}
            }
        }
        let Some(user) = caller else {
            return err(ErrorCode::Unauthorized, "no token");
        };
        let uid: UserId = user.parse().unwrap();
        if let Some(rest) = path.strip_prefix("/v1/topics/") {
            let (topic, tail) = rest.split_once('/').unwrap();
            let topic = topic.to_owned();
            return match (method.as_str(), tail) {
                ("POST", "changes") => self.append(
                    &topic,
                    LogEntry(rendezvous::topic::ENTRY_CHANGE, body.to_vec()),
                ),
                ("POST", "messages") => self.append(
                    &topic,
                    LogEntry(rendezvous::topic::ENTRY_MESSAGE, body.to_vec()),
                ),
                ("GET", "checkpoint") => cbor(&CheckpointResponse {
                    version: VERSION,
                    checkpoint: self.checkpoint(&topic),
                }),
                ("GET", "entries") => {
                    let from = query(req, "from");
                    let limit = query(req, "limit");
                    let t = &self.topics[&topic];
                    let mut entries = Vec::new();
                    for (i, e) in t
                        .entries
                        .iter()
                        .enumerate()
                        .skip(from as usize)
                        .take(limit as usize)
                    {
                        let i = i as u64;
                        if self.tamper.drop_index == Some(i) {
                            continue;
                        }
                        let mut e = e.clone();
                        if self.tamper.corrupt_index == Some(i) {
                            *e.last_mut().unwrap() ^= 0x01;
                        }
                        entries.push(IndexedEntry {
                            index: i,
                            entry: ByteBuf::from(e),
                        });
                    }
                    cbor(&EntriesResponse {
                        version: VERSION,
                        entries,
                    })
                }
                ("GET", "proof/inclusion") => {
                    let p = self.topics[&topic]
                        .tree
                        .inclusion_proof(
                            LeafIndex(query(req, "index")),
                            TreeSize(query(req, "size")),
                        )
                        .unwrap();
                    cbor(&ProofResponse {
                        version: VERSION,
                        path: p
                            .path
                            .iter()
                            .map(|h: &LogHash| ByteBuf::from(h.0.to_vec()))
                            .collect(),
                    })
                }
                ("GET", "proof/consistency") => {
                    let p = self.topics[&topic]
                        .tree
                        .consistency_proof(TreeSize(query(req, "old")), TreeSize(query(req, "new")))
                        .unwrap();
                    cbor(&ProofResponse {
                        version: VERSION,
                        path: p.path.iter().map(|h| ByteBuf::from(h.0.to_vec())).collect(),
                    })
                }
                ("PUT", "cursor") => {
                    let c = CursorRequest::from_cbor(body).unwrap();
                    let cursor = self.cursors.entry((topic, user)).or_default();
                    *cursor = (*cursor).max(c.index);
                    cbor(&Empty::default())
                }
                _ => err(ErrorCode::NotFound, "no such endpoint"),
            };
        }
        match (method.as_str(), path.as_str()) {
            ("POST", "/v1/link") => {
                LinkOpenRequest::from_cbor(body).unwrap();
                cbor(&Empty::default())
            }
            ("GET", "/v1/sync") => {
                let mut topics = Vec::new();
                for (id, t) in &self.topics {
                    if t.replayer.state().unwrap().member_of(&uid).is_some() {
                        topics.push(SyncItem {
                            topic: id.parse().unwrap(),
                            size: t.entries.len() as u64,
                            cursor: self
                                .cursors
                                .get(&(id.clone(), user.clone()))
                                .copied()
                                .unwrap_or(0),
                        });
                    }
                }
                cbor(&SyncResponse {
                    version: VERSION,
                    topics,
                    refill: false,
                })
            }
            ("POST", "/v1/prekeys") => {
                let r = UploadPreKeysRequest::from_cbor(body).unwrap();
                cbor(&CountResponse {
                    version: VERSION,
                    count: r.prekeys.len() as u64,
                })
            }
            ("GET", "/v1/devices") => cbor(&DevicesResponse {
                version: VERSION,
                devices: self.users[&user]
                    .devices
                    .iter()
                    .map(|d| DeviceInfo {
                        device_cert: d.clone(),
                        created: 1,
                        last_seen: 2,
                    })
                    .collect(),
            }),
            ("POST", "/v1/prekeys/claim") => cbor(&ClaimPreKeysResponse {
                version: VERSION,
                prekeys: Vec::new(),
            }),
            ("POST", "/v1/topic-keys") => {
                let r = UploadTopicKeysRequest::from_cbor(body).unwrap();
                let rec = self.users.get_mut(&user).unwrap();
                for u in &r.uploads {
                    let up = TopicKeyUpload::from_wire(u, &rec.ik, &uid).unwrap();
                    rec.topic_keys.push(up.cert.signed_bytes().clone());
                }
                cbor(&CountResponse {
                    version: VERSION,
                    count: rec.topic_keys.len() as u64,
                })
            }
            ("POST", "/v1/topic-keys/claim") => {
                let r = ClaimTopicKeysRequest::from_cbor(body).unwrap();
                let mut keys = Vec::new();
                for u in r.users {
                    if let Some(rec) = self.users.get_mut(u.as_str())
                        && let Some(cert) = rec.topic_keys.pop()
                    {
                        keys.push(ClaimedTopicKey {
                            user: u.clone(),
                            registration: rec.registration.clone(),
                            topic_key_cert: cert,
                        });
                    }
                }
                cbor(&ClaimTopicKeysResponse {
                    version: VERSION,
                    keys,
                })
            }
            ("GET", "/v1/inbox") => cbor(&InboxResponse {
                version: VERSION,
                items: Vec::new(),
            }),
            ("GET", "/v1/keys/status") => cbor(&KeyStatusResponse {
                version: VERSION,
                prekeys_left: 100,
                topic_keys_left: self.users[&user].topic_keys.len() as u64,
                refill: false,
            }),
            ("POST", "/v1/topics") => {
                let entry = LogEntry(rendezvous::topic::ENTRY_CHANGE, body.to_vec());
                let Ok(rendezvous::topic::ParsedEntry::Change(signed)) = entry.parse() else {
                    return err(ErrorCode::Malformed, "not a change");
                };
                let topic = signed.decode_unverified().unwrap().topic.to_string();
                self.topics.insert(
                    topic.clone(),
                    TopicRec {
                        entries: Vec::new(),
                        tree: Tree::new(MemoryNodeStore::new()),
                        replayer: Replayer::new(),
                    },
                );
                self.append(&topic, entry)
            }
            ("GET", "/v1/topics") => {
                let mut topics = Vec::new();
                for (id, t) in &self.topics {
                    let state = t.replayer.state().unwrap();
                    if let Some(m) = state.member_of(&uid) {
                        topics.push(TopicSummary {
                            topic: id.parse().unwrap(),
                            size: state.size(),
                            role: state.member(m).unwrap().role.to_wire(),
                            epoch: state.epoch(),
                        });
                    }
                }
                cbor(&TopicsResponse {
                    version: VERSION,
                    topics,
                })
            }
            _ => err(ErrorCode::NotFound, "no such endpoint"),
        }
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn handler(
    req: HttpRequest,
    body: web::Bytes,
    fake: web::Data<Arc<Mutex<Fake>>>,
) -> HttpResponse {
    fake.lock().unwrap().handle(&req, &body)
}

/// `GET /v1/stream`: sends a frame for every entry appended after the connection opened.
async fn stream(
    req: HttpRequest,
    payload: web::Payload,
    fake: web::Data<Arc<Mutex<Fake>>>,
) -> Result<HttpResponse, actix_web::Error> {
    let user = {
        let f = fake.lock().unwrap();
        req.headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| f.tokens.get(t).cloned())
    };
    let Some(user) = user else {
        return Ok(err(ErrorCode::Unauthorized, "no token"));
    };
    let uid: UserId = user.parse().unwrap();
    let (response, mut session, _incoming) = actix_ws::handle(&req, payload)?;
    let fake = fake.get_ref().clone();
    let sizes = |f: &Fake| -> HashMap<String, usize> {
        f.topics
            .iter()
            .map(|(id, t)| (id.clone(), t.entries.len()))
            .collect()
    };
    let mut sent = sizes(&fake.lock().unwrap());
    actix_rt::spawn(async move {
        loop {
            actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
            let frames: Vec<Vec<u8>> = {
                let f = fake.lock().unwrap();
                let mut frames = Vec::new();
                for (id, t) in &f.topics {
                    if t.replayer.state().unwrap().member_of(&uid).is_none() {
                        continue;
                    }
                    let from = sent.get(id).copied().unwrap_or(0);
                    for (i, e) in t.entries.iter().enumerate().skip(from) {
                        frames.push(
                            StreamFrame {
                                topic: id.parse().unwrap(),
                                index: i as u64,
                                entry: ByteBuf::from(e.clone()),
                            }
                            .to_cbor(),
                        );
                    }
                }
                sent = sizes(&f);
                frames
            };
            for frame in frames {
                if session.binary(frame).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(response)
}

/// Starts the fake on loopback; returns its URL, pin and state.
fn start() -> (String, Trust, Arc<Mutex<Fake>>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], key)
    .unwrap();
    let fake = Arc::new(Mutex::new(Fake {
        name: "localhost".into(),
        sk: ServerKey::generate(),
        users: HashMap::new(),
        tokens: HashMap::new(),
        topics: HashMap::new(),
        tamper: Tamper::default(),
        links: HashMap::new(),
        cursors: HashMap::new(),
    }));
    let data = web::Data::new(fake.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(8 << 20))
            .route("/v1/stream", web::get().to(stream))
            .default_service(web::to(handler))
    })
    .workers(1)
    .shutdown_timeout(1)
    .bind_rustls_0_23(("127.0.0.1", 0), tls)
    .unwrap();
    let port = server.addrs()[0].port();
    actix_rt::spawn(server.run());
    (
        format!("https://localhost:{port}"),
        Trust::Pinned(Fingerprint::of(&der)),
        fake,
    )
}

fn home(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rdv-fake-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[actix_rt::test]
async fn register_create_send_read_verify_and_catch_a_lying_server() {
    let (url, trust, fake) = start();
    let alice_id: UserId = "@alice:localhost".parse().unwrap();
    let bob_id: UserId = "@bob:localhost".parse().unwrap();
    let (ha, hb) = (home("alice"), home("bob"));

    // A refused pin is a clear error with its code, and leaves the directory usable.
    let e = Client::register(&ha, &url, trust.clone(), "bad", &alice_id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PinInvalid), "{e}");
    // A wrong pin is refused by the TLS layer.
    let wrong = Trust::Pinned(Fingerprint([0; 32]));
    let e = Client::register(&ha, &url, wrong, "1", &alice_id)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Transport { .. }), "{e}");

    let mut alice = Client::register(&ha, &url, trust.clone(), "1", &alice_id)
        .await
        .unwrap();
    let mut bob = Client::register(&hb, &url, trust.clone(), "2", &bob_id)
        .await
        .unwrap();
    assert_eq!(alice.devices().await.unwrap().len(), 1);
    assert_eq!(alice.key_status().await.unwrap().topic_keys_left, 50);

    let topic = alice
        .create_topic(&[(bob_id.clone(), Role::Writer)], History::Shared)
        .await
        .unwrap();
    let i1 = alice.send(&topic, b"hello bob").await.unwrap();
    assert_eq!(i1, 1);
    let i2 = bob.send(&topic, b"hi alice").await.unwrap();
    assert_eq!(i2, 2);

    let r = bob.read(&topic).await.unwrap();
    assert_eq!(r.size, 3);
    assert!(r.missing.is_empty());
    assert!(r.entries.iter().all(|e| e.verified()), "{r:?}");
    assert!(matches!(&r.entries[1].content,
        EntryContent::Message { sender, text: Some(t), .. } if sender == "@alice:localhost" && t == "hello bob"));
    // Nothing new the second time.
    assert!(bob.read(&topic).await.unwrap().entries.is_empty());

    let topics = bob.topics().await.unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].role, Role::Writer);

    // Changes: rekey, then a message in the new epoch that bob can read.
    alice.rekey(&topic).await.unwrap();
    alice.set_role(&topic, &bob_id, Role::Reader).await.unwrap();
    let e = bob.send(&topic, b"may I?").await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidInput(_)), "{e}");
    alice.send(&topic, b"epoch one").await.unwrap();
    let r = bob.read(&topic).await.unwrap();
    assert!(r.entries.iter().all(|e| e.verified()), "{r:?}");
    assert!(matches!(&r.entries.last().unwrap().content,
        EntryContent::Message { text: Some(t), epoch: 1, .. } if t == "epoch one"));

    let v = alice.verify(&topic).await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(v.size, 6);

    // The server withholds an entry and tampers with another.
    alice.send(&topic, b"withheld").await.unwrap();
    alice.send(&topic, b"tampered").await.unwrap();
    {
        let mut f = fake.lock().unwrap();
        f.tamper.drop_index = Some(6);
        f.tamper.corrupt_index = Some(7);
    }
    let r = bob.read(&topic).await.unwrap();
    assert_eq!(r.missing, vec![6]);
    let bad = r.entries.iter().find(|e| e.index == 7).unwrap();
    assert!(!bad.verified(), "{bad:?}");
    let v = bob.verify(&topic).await.unwrap();
    assert!(!v.ok());

    // The server forks its log: same size, another root.
    {
        let mut f = fake.lock().unwrap();
        f.tamper = Tamper {
            fork: true,
            ..Tamper::default()
        };
    }
    let e = bob.read(&topic).await.unwrap_err();
    assert!(matches!(e, ClientError::Witness(_)), "{e}");

    let _ = std::fs::remove_dir_all(ha);
    let _ = std::fs::remove_dir_all(hb);
}

#[actix_rt::test]
async fn link_a_device_then_watch_live() {
    let (url, trust, _fake) = start();
    let alice_id: UserId = "@alice:localhost".parse().unwrap();
    let bob_id: UserId = "@bob:localhost".parse().unwrap();
    let (ha, ha2, hb) = (home("alice"), home("alice2"), home("bob"));
    let mut alice = Client::register(&ha, &url, trust.clone(), "1", &alice_id)
        .await
        .unwrap();
    let mut bob = Client::register(&hb, &url, trust.clone(), "2", &bob_id)
        .await
        .unwrap();
    let topic = alice
        .create_topic(&[(bob_id.clone(), Role::Writer)], History::Protected)
        .await
        .unwrap();
    alice.send(&topic, b"before linking").await.unwrap();

    // Link a second device of alice's.
    let pending = alice.link_offer_start().await.unwrap();
    let code = pending.code().to_string();
    let offer = alice.link_offer_finish(pending, std::time::Duration::from_secs(30));
    let join = Client::link_join(&ha2, &url, trust.clone(), &code);
    let (offered, joined) = futures_util::future::join(offer, join).await;
    offered.unwrap();
    let mut alice2 = joined.unwrap();
    assert_eq!(alice2.user(), &alice_id);
    assert_eq!(alice.devices().await.unwrap().len(), 2);
    // The new device reads the topic with the keys it was given.
    let r = alice2.read(&topic).await.unwrap();
    assert!(r.entries.iter().all(|e| e.verified()), "{r:?}");
    assert!(matches!(&r.entries[1].content,
        EntryContent::Message { text: Some(t), .. } if t == "before linking"));
    // A wrong code fails cleanly.
    let e = Client::link_join(&home("x"), &url, trust.clone(), "not a code")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Link(_)), "{e}");

    // Bob watches; alice2 posts from her new device.
    bob.read(&topic).await.unwrap();
    let mut seen: Vec<String> = Vec::new();
    {
        let watch = bob.watch(|_, r| {
            for e in &r.unwrap().entries {
                assert!(e.verified(), "{e:?}");
                if let EntryContent::Message { text: Some(t), .. } = &e.content {
                    seen.push(t.clone());
                }
            }
        });
        let driver = async {
            actix_rt::time::sleep(std::time::Duration::from_millis(500)).await;
            alice2.send(&topic, b"live from device 2").await.unwrap();
            actix_rt::time::sleep(std::time::Duration::from_secs(2)).await;
        };
        let _ = futures_util::future::select(Box::pin(watch), Box::pin(driver)).await;
    }
    assert_eq!(seen, vec!["live from device 2".to_string()]);
    for h in [ha, ha2, hb] {
        let _ = std::fs::remove_dir_all(h);
    }
}
