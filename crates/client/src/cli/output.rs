//! `rdv`'s answers as one type: every command builds [`Output`] values, and they are rendered in
//! one place — as text ([`Output::to_text`], in `text`) or as one JSON object per line
//! ([`Output::to_json`]) — by the [`Printer`]. Failures too: [`Output::error`] carries the
//! stable machine-readable code of [`ClientError::error_code`] (`client-api.md` §9).

use serde::Serialize;

use crate::{
    ClientError, EntryContent, EntryReport, InboxReport, KeyStatus, ReadReport, TopicEntry,
    VerifyReport,
};
use rendezvous_protocol::ids::TopicId;

/// What a topic change command did (text only: JSON says `changed` for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `topic add`.
    Added,
    /// `topic remove`.
    Removed,
    /// `topic role`.
    RoleChanged,
    /// `topic rekey`.
    Rekeyed,
    /// `topic move`, `device remove --lost`.
    Moved,
}

/// An inbox item that could not be used (`synced.failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxFailure {
    /// Its sequence number.
    pub seq: u64,
    /// Why.
    pub error: String,
}

/// One line of `rdv`'s answer. In JSON, `type` names the variant in snake case and the fields
/// follow; fields marked text-only are not in the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// `account register`: the new account.
    Registered {
        /// The user id.
        user: String,
        /// The homeserver's name.
        server: String,
    },
    /// `account status`: the key stock.
    Status {
        /// The user id.
        user: String,
        /// Pre keys left for this device.
        prekeys_left: u64,
        /// Topic keys left for the user.
        topic_keys_left: u64,
        /// Whether the server asks for a refill.
        refill: bool,
        /// The last-resort topic key on the server: `none`, `unused` or `served`.
        last_resort: String,
    },
    /// `device link`, first: the link code and the command that enters it on the new device.
    LinkCode {
        /// The one-time code.
        code: String,
        /// The whole `rdv device join …` command, with this device's server and trust.
        command: String,
    },
    /// `device link`, at the end: the new device joined.
    Linked,
    /// `passphrase change`: the keystore is locked with the new passphrase.
    PassphraseChanged,
    /// `device join`: this device joined.
    Joined {
        /// The account's user id.
        user: String,
    },
    /// `device list`: one device.
    Device {
        /// The Device Key's key id (hex), as `rendezvous admin devices` shows it.
        id: String,
        /// Certificate creation time (Unix seconds).
        created: u64,
        /// Last seen by the server (Unix seconds).
        last_seen: u64,
        /// Whether it is this device.
        this_device: bool,
        /// The key id of the device that endorsed it, when this device learned it.
        #[serde(skip_serializing_if = "Option::is_none")]
        endorsed_by: Option<String>,
    },
    /// `sync`: a device was added to the account (inbox notice), its certificate and
    /// endorsement verified.
    DeviceAdded {
        /// The new device's key id (hex).
        id: String,
        /// The endorsing device's key id (hex).
        endorser: String,
    },
    /// `sync`: a `device added` notice that does not verify: reported, never dropped.
    DeviceAddedUnverified {
        /// The new device's key id (hex), when the certificate decodes.
        id: Option<String>,
        /// The endorser's key id (hex), when the endorsement decodes.
        endorser: Option<String>,
        /// Why it does not verify.
        error: String,
    },
    /// `sync`: another device rotated the account's Identity Key (inbox notice, `directory.md`
    /// §8) and this device now holds the new key.
    IdentityKeyReceived {
        /// The IK rotated from (hex).
        from: String,
        /// The IK rotated to (hex).
        to: String,
    },
    /// `sync`: a rotation notice not applied (this device keeps its key): reported, never dropped.
    IdentityKeyRefused {
        /// The IK rotated from (hex), when the rotation decodes.
        from: Option<String>,
        /// The IK rotated to (hex), when the rotation decodes.
        to: Option<String>,
        /// Why it was not applied.
        error: String,
    },
    /// `device remove`: the removed device.
    DeviceRemoved {
        /// Its key id (hex).
        id: String,
    },
    /// `topic create`: the new topic.
    TopicCreated {
        /// The topic id.
        topic: String,
    },
    /// `topic add|remove|role|rekey`: the change's log index.
    Changed {
        /// The topic id.
        topic: String,
        /// The change's log index.
        index: u64,
        /// What the change did (text only).
        #[serde(skip)]
        change: ChangeKind,
    },
    /// `topic list`: one topic.
    Topic {
        /// The topic id.
        topic: String,
        /// Its log size.
        size: u64,
        /// The user's role.
        role: String,
        /// Current epoch.
        epoch: u32,
    },
    /// `send`: the message's log index.
    Sent {
        /// The topic id.
        topic: String,
        /// The message's log index.
        index: u64,
    },
    /// `send` to a topic hosted elsewhere whose server did not answer in time: queued there.
    Queued {
        /// The topic id.
        topic: String,
        /// The hosting server.
        host: String,
    },
    /// `read`, `watch`, `verify`: a message entry.
    Message {
        /// The topic id.
        topic: String,
        /// Log index.
        index: u64,
        /// The sender's user id (`member N` if unknown).
        sender: String,
        /// The epoch it was sent in.
        epoch: u32,
        /// The plaintext, when it could be opened.
        text: Option<String>,
        /// `"by design"` when there is no plaintext because the message was posted before this
        /// user joined (protected history, keys not shared): not a problem. Absent otherwise.
        #[serde(skip_serializing_if = "Option::is_none")]
        undecryptable: Option<&'static str>,
        /// Whether every check passed.
        verified: bool,
        /// The checks that failed.
        problems: Vec<String>,
        /// Whether it came live (`watch`): text names the topic on every line (text only).
        #[serde(skip)]
        live: bool,
    },
    /// `read`, `watch`, `verify`: a change entry.
    Change {
        /// The topic id.
        topic: String,
        /// Log index.
        index: u64,
        /// The author's user id.
        author: String,
        /// What it did, e.g. `add @bob:a.example writer`.
        change: String,
        /// The epoch after it.
        epoch: u32,
        /// Whether every check passed.
        verified: bool,
        /// The checks that failed.
        problems: Vec<String>,
        /// Whether it came live (text only).
        #[serde(skip)]
        live: bool,
    },
    /// `read`, `watch`, `verify`: an entry that does not decode or broke a rule.
    Invalid {
        /// The topic id.
        topic: String,
        /// Log index.
        index: u64,
        /// Always false.
        verified: bool,
        /// Why.
        problems: Vec<String>,
        /// Whether it came live (text only).
        #[serde(skip)]
        live: bool,
    },
    /// `read`: the head the entries were checked against, and its age.
    Head {
        /// The topic id.
        topic: String,
        /// The head's size.
        size: u64,
        /// Seconds since the hosting server signed it.
        age: u64,
        /// Whether that is more than `MAX_HEAD_AGE` (writes are refused: `stale_head`).
        stale: bool,
    },
    /// `evidence export`, one per piece of evidence kept (`tag-log.md` §8.2).
    Evidence {
        /// The topic id.
        topic: String,
        /// The hosting server the evidence is against.
        host: String,
        /// `split view`, `inconsistent` or `rollback`.
        kind: String,
        /// The evidence CBOR, hex.
        cbor: String,
    },
    /// `evidence export` when this device keeps none (for `topic`, or for any topic): an empty
    /// export is said, not silent.
    NoEvidence {
        /// The topic asked about, if one was.
        topic: Option<String>,
    },
    /// `read`, `watch`: log indices the server did not return.
    Missing {
        /// The topic id.
        topic: String,
        /// The missing indices.
        indices: Vec<u64>,
    },
    /// `verify`: the whole log's verdict.
    Verify {
        /// The topic id.
        topic: String,
        /// Whether the whole log verified.
        ok: bool,
        /// The verified checkpoint's size.
        size: u64,
        /// Its root (hex).
        root: String,
        /// The size of the earlier checkpoint it was shown consistent with.
        consistent_with: Option<u64>,
        /// Whether the root recomputed from all leaves matches (`null`: some leaf unknown).
        root_matches: Option<bool>,
        /// Indices of entries that failed a check.
        failed: Vec<u64>,
        /// Indices the server did not return.
        missing: Vec<u64>,
        /// The hosting server's current head's size.
        host_size: Option<u64>,
        /// Cosigners that agree: `[server, size]`.
        cosigned: Vec<(String, u64)>,
        /// Contradictions between the views of the log.
        problems: Vec<String>,
        /// Cosigners whose key is not known (reported, neither support nor a failure).
        unknown_cosigners: Vec<String>,
        /// Seconds since the hosting server signed the head.
        age: u64,
        /// Whether that is more than `MAX_HEAD_AGE`.
        stale: bool,
        /// Kinds of the evidence this device keeps against the hosting server
        /// (`rdv evidence export` writes it).
        evidence: Vec<String>,
    },
    /// `sync`: what the inbox brought.
    Synced {
        /// Topic keys received and stored.
        topic_keys_received: usize,
        /// Inbox items that could not be used.
        failed: Vec<InboxFailure>,
        /// Whether pre keys and topic keys were refilled.
        refilled: bool,
    },
    /// `contact verify`: the verification code to compare, and its QR code (text only).
    SafetyCode {
        /// The contact.
        user: String,
        /// The contact's IK the code is for (hex).
        identity_key: String,
        /// 60 digits in 12 groups of 5.
        code: String,
        /// The QR code's payload, `rdv-verify:1:<60 digits>`.
        qr_payload: String,
        /// Whether the contact is now verified for that key (`--confirm`).
        verified: bool,
    },
    /// `contact list`, one per contact; `contact accept`: the contact after it.
    Contact {
        /// The user id.
        user: String,
        /// The accepted IK's fingerprint (30 digits, the user's half of a code).
        fingerprint: String,
        /// `unverified`, `verified`, `changed` or `rotated`.
        state: String,
        /// The directory entry index it was accepted at.
        index: u64,
        /// The checkpoint size it was accepted at.
        size: u64,
        /// For `changed`: the key the directory binds now, refused until accepted (hex).
        changed_to: Option<String>,
    },
    /// Any command (on stderr as text): a contact's key rotation was followed (shown once).
    IdentityRotated {
        /// The contact.
        user: String,
        /// The IK rotated from (hex).
        from: String,
        /// The IK now (hex).
        to: String,
    },
    /// Any command (on stderr as text), until `directory ack`: the homeserver's directory
    /// binds this user to a key no device of it holds.
    DirectoryForeignKey {
        /// The homeserver.
        server: String,
        /// The entry's index.
        index: u64,
        /// The key it binds (hex).
        identity_key: String,
        /// The file that keeps the evidence.
        evidence: String,
    },
    /// Any command (on stderr as text): no witness confirmed the homeserver's directory
    /// checkpoint for more than `MONITOR_MAX_AGE`.
    DirectoryStale {
        /// The homeserver.
        server: String,
        /// Seconds since the newest witness cosignature.
        age: u64,
    },
    /// Any command (on stderr as text): self-monitoring could not be done, or found entries
    /// that break a rule; the command itself goes on.
    DirectoryWarning {
        /// The code of what failed.
        code: String,
        /// What happened.
        warning: String,
    },
    /// `directory check`: the pass's result.
    DirectoryChecked {
        /// The homeserver.
        server: String,
        /// The checkpoint size checked up to.
        size: u64,
        /// Entries read in this pass.
        checked: u64,
        /// Witnesses whose cosignature verified.
        witnessed_by: Vec<String>,
        /// Seconds since the newest witness cosignature.
        witness_age: Option<u64>,
        /// Alarms not acknowledged.
        alarms: Vec<u64>,
    },
    /// `directory ack`: the alarm acknowledged.
    AlarmAcked {
        /// The entry's index.
        index: u64,
    },
    /// `read`, `verify`: an entry the homeserver's mirror refused because a member spec for
    /// one of its users carries another IK (`directory.md` §6.5).
    MirrorRefused {
        /// The topic id.
        topic: String,
        /// The entry's index.
        index: u64,
        /// The user.
        user: String,
        /// The IK in the entry (hex).
        identity_key: String,
    },
    /// A failure: of the whole command (the last line, on stdout with `--json`, else on
    /// stderr), or of one topic in `watch` (with `topic`).
    Error {
        /// The stable machine-readable code ([`ClientError::error_code`]).
        code: String,
        /// What happened and what to do, one line.
        error: String,
        /// The topic, for a failure in `watch` that concerns one topic.
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
}

impl Output {
    /// The JSON object of this answer, on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({"type": "error", "code": "output", "error": e.to_string()})
                .to_string()
        })
    }

    /// A failure, with its code; `topic` for a failure of one topic in `watch`.
    pub fn error(e: &ClientError, topic: Option<&TopicId>) -> Output {
        Output::Error {
            code: e.error_code().to_owned(),
            error: e.to_string().replace('\n', " "),
            topic: topic.map(|t| t.to_string()),
        }
    }

    /// One entry as read; `live` for `watch`.
    pub fn entry(topic: &TopicId, e: &EntryReport, live: bool) -> Output {
        let topic = topic.to_string();
        let (index, verified, problems) = (e.index, e.verified(), e.problems.clone());
        match &e.content {
            EntryContent::Message {
                sender,
                epoch,
                text,
                by_design,
            } => Output::Message {
                topic,
                index,
                sender: sender.clone(),
                epoch: *epoch,
                text: text.clone(),
                undecryptable: by_design.then_some("by design"),
                verified,
                problems,
                live,
            },
            EntryContent::Change {
                author,
                description,
                epoch,
            } => Output::Change {
                topic,
                index,
                author: author.clone(),
                change: description.clone(),
                epoch: *epoch,
                verified,
                problems,
                live,
            },
            EntryContent::Invalid => Output::Invalid {
                topic,
                index,
                verified: false,
                problems,
                live,
            },
        }
    }

    /// A read's entries, then the missing indices if any; `live` for `watch`. A read (not
    /// live) starts with the head and its age.
    pub fn read(r: &ReadReport, live: bool) -> Vec<Output> {
        let mut out: Vec<Output> = Vec::new();
        if !live {
            out.push(Output::Head {
                topic: r.topic.to_string(),
                size: r.size,
                age: r.age,
                stale: r.stale,
            });
        }
        out.extend(r.entries.iter().map(|e| Output::entry(&r.topic, e, live)));
        if !r.missing.is_empty() {
            out.push(Output::Missing {
                topic: r.topic.to_string(),
                indices: r.missing.clone(),
            });
        }
        out.extend(Output::mirror_refused(&r.topic, &r.mirror_refused));
        out
    }

    /// `mirror_refused` lines.
    pub fn mirror_refused(topic: &TopicId, refusals: &[crate::MirrorRefusal]) -> Vec<Output> {
        refusals
            .iter()
            .map(|m| Output::MirrorRefused {
                topic: topic.to_string(),
                index: m.index,
                user: m.user.clone(),
                identity_key: m.identity_key.clone(),
            })
            .collect()
    }

    /// A verification: the entries that failed, then the verdict.
    pub fn verify(r: &VerifyReport) -> Vec<Output> {
        let mut out: Vec<Output> = r
            .failed
            .iter()
            .map(|e| Output::entry(&r.topic, e, false))
            .collect();
        out.extend(Output::mirror_refused(
            &r.topic,
            &r.witnesses.mirror_refused,
        ));
        out.push(Output::Verify {
            topic: r.topic.to_string(),
            ok: r.ok(),
            size: r.size,
            root: r.root.clone(),
            consistent_with: r.consistent_with,
            root_matches: r.root_matches,
            failed: r.failed.iter().map(|e| e.index).collect(),
            missing: r.missing.clone(),
            host_size: r.witnesses.host_size,
            cosigned: r.witnesses.cosigned.clone(),
            problems: r.witnesses.problems.clone(),
            unknown_cosigners: r.witnesses.unknown_cosigners.clone(),
            age: r.age,
            stale: r.stale,
            evidence: r.evidence.clone(),
        });
        out
    }

    /// `account status`.
    pub fn status(user: &str, s: &KeyStatus) -> Output {
        Output::Status {
            user: user.to_owned(),
            prekeys_left: s.prekeys_left,
            topic_keys_left: s.topic_keys_left,
            refill: s.refill,
            last_resort: s.last_resort.name().to_owned(),
        }
    }

    /// `topic list`: one topic.
    pub fn topic(t: &TopicEntry) -> Output {
        Output::Topic {
            topic: t.topic.to_string(),
            size: t.size,
            role: t.role.name().to_owned(),
            epoch: t.epoch,
        }
    }

    /// `sync`.
    pub fn synced(inbox: &InboxReport, refilled: bool) -> Output {
        Output::Synced {
            topic_keys_received: inbox.topic_keys,
            failed: inbox
                .failed
                .iter()
                .map(|(seq, error)| InboxFailure {
                    seq: *seq,
                    error: error.clone(),
                })
                .collect(),
            refilled,
        }
    }
}
