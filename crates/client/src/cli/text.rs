//! `rdv`'s answers as text: what a person reads. Times in UTC, counts with the right plural,
//! entries of `watch` named by topic.

use super::output::{ChangeKind, Output};

impl Output {
    /// The text of this answer (one line, or a few for `device link` and `verify`).
    pub fn to_text(&self) -> String {
        if let Some(text) = super::directory::text(self) {
            return text;
        }
        match self {
            Output::Registered { user, server } => format!("registered {user} on {server}"),
            Output::Status { .. } => status_text(self),
            Output::LinkCode { command, .. } => format!(
                "On the new device run:\n  {command}\n(with `--home DIR` after `rdv` to keep its keystore somewhere else than ./.rdv)\nWaiting up to 10 minutes…"
            ),
            Output::Linked => "device linked".into(),
            Output::PassphraseChanged => "passphrase changed".into(),
            Output::Joined { user } => format!("this device now belongs to {user}"),
            Output::Device { .. }
            | Output::DeviceAdded { .. }
            | Output::DeviceAddedUnverified { .. }
            | Output::IdentityKeyReceived { .. }
            | Output::IdentityKeyRefused { .. } => device_text(self),
            Output::DeviceRemoved { id } => format!("removed device {id}"),
            Output::TopicCreated { topic } => format!("created {topic}"),
            Output::Changed {
                topic,
                index,
                change,
            } => {
                let what = match change {
                    ChangeKind::Added => "added to",
                    ChangeKind::Removed => "removed from",
                    ChangeKind::RoleChanged => "role changed in",
                    ChangeKind::Rekeyed => "new epoch in",
                    ChangeKind::Moved => "moved to your new identity key in",
                };
                format!("{what} {topic} (log index {index})")
            }
            Output::Topic {
                topic,
                size,
                role,
                epoch,
            } => format!(
                "{topic}  {role}  {}, epoch {epoch}",
                count(*size, "entry", "entries")
            ),
            Output::Sent { topic, index } => format!("sent to {topic} at index {index}"),
            Output::Queued { topic, host } => {
                format!("queued for {host}: appears in {topic} when {host} takes it")
            }
            Output::Message { .. } | Output::Change { .. } | Output::Invalid { .. } => {
                entry_text(self)
            }
            Output::Head {
                topic,
                size,
                age,
                stale,
            } => format!(
                "{topic}: head of {}, signed {age} s ago{}",
                count(*size, "entry", "entries"),
                if *stale {
                    " — STALE: the server may be hiding newer entries; sending is refused"
                } else {
                    ""
                }
            ),
            Output::Evidence {
                topic, host, kind, ..
            } => format!("{topic}: evidence against {host}: {kind}"),
            Output::NoEvidence { topic: Some(topic) } => {
                format!("{topic}: no evidence kept against its hosting server")
            }
            Output::NoEvidence { topic: None } => "no evidence kept".into(),
            Output::Missing { topic, indices } => format!(
                "!! MISSING {} of {topic}: {}",
                noun(indices.len(), "log entry", "log entries"),
                join(indices)
            ),
            Output::Verify { .. } => verify_text(self),
            Output::Synced { .. } => synced_text(self),
            Output::Error {
                error,
                topic: Some(topic),
                ..
            } => format!("!! {topic}: {error}"),
            Output::Error { error, .. } => format!("rdv: error: {error}"),
            // Their texts are the directory's (`super::directory::text`, above).
            Output::SafetyCode { .. }
            | Output::Contact { .. }
            | Output::IdentityRotated { .. }
            | Output::DirectoryForeignKey { .. }
            | Output::DirectoryStale { .. }
            | Output::DirectoryWarning { .. }
            | Output::DirectoryChecked { .. }
            | Output::AlarmAcked { .. }
            | Output::MirrorRefused { .. } => String::new(),
        }
    }
}

/// The key stock, and whether to refill.
fn status_text(output: &Output) -> String {
    let Output::Status {
        user,
        prekeys_left,
        topic_keys_left,
        refill,
        last_resort,
    } = output
    else {
        return String::new();
    };
    let last_resort = match last_resort.as_str() {
        "unused" => "",
        "served" => ", last-resort key handed out",
        _ => ", no last-resort key",
    };
    format!(
        "{user}: {} left on this device, {} left{last_resort}{}",
        count(*prekeys_left, "pre key", "pre keys"),
        count(*topic_keys_left, "topic key", "topic keys"),
        if *refill {
            " (refill needed: run `rdv sync`)"
        } else {
            ""
        }
    )
}

/// What `rdv sync` received and did.
fn synced_text(output: &Output) -> String {
    let Output::Synced {
        topic_keys_received,
        failed,
        refilled,
    } = output
    else {
        return String::new();
    };
    let received = u64::try_from(*topic_keys_received).unwrap_or(u64::MAX);
    let mut s = format!("received {}", count(received, "topic key", "topic keys"));
    for f in failed {
        s.push_str(&format!("; inbox item {} unusable: {}", f.seq, f.error));
    }
    if *refilled {
        s.push_str("; refilled pre keys and topic keys");
    }
    s
}

/// A last-seen time: `never` for a device the server has not seen since it was added.
fn seen(secs: u64) -> String {
    if secs == 0 {
        "never".to_owned()
    } else {
        utc(secs)
    }
}

/// `[index] …` for an entry, marked when a check failed; with the topic first when live.
fn entry_text(output: &Output) -> String {
    let (topic, live, index, body, problems) = match output {
        Output::Message {
            topic,
            live,
            index,
            sender,
            text,
            undecryptable,
            problems,
            ..
        } => (
            topic,
            live,
            index,
            format!(
                "{sender}: {}",
                match (text, undecryptable) {
                    (Some(t), _) => t.as_str(),
                    (None, Some(_)) => "<cannot decrypt, by design: posted before you joined>",
                    (None, None) => "<cannot decrypt>",
                }
            ),
            problems,
        ),
        Output::Change {
            topic,
            live,
            index,
            author,
            change,
            epoch,
            problems,
            ..
        } => (
            topic,
            live,
            index,
            format!("* {author}: {change} (epoch {epoch})"),
            problems,
        ),
        Output::Invalid {
            topic,
            live,
            index,
            problems,
            ..
        } => (topic, live, index, "<invalid entry>".to_owned(), problems),
        _ => return String::new(),
    };
    let mut s = if *live {
        format!("{topic} [{index}] {body}")
    } else {
        format!("[{index}] {body}")
    };
    // An invalid entry always has a problem, so it is always marked.
    if !problems.is_empty() {
        s.push_str(&format!("  !! NOT VERIFIED: {}", problems.join("; ")));
    }
    s
}

/// The verdict of `rdv verify`, and each contradiction on a line of its own.
fn verify_text(output: &Output) -> String {
    let Output::Verify {
        topic,
        ok,
        size,
        root,
        consistent_with,
        root_matches,
        failed,
        missing,
        cosigned,
        problems,
        unknown_cosigners,
        age,
        stale,
        evidence,
        ..
    } = output
    else {
        return String::new();
    };
    let mut s = format!(
        "{topic}: {} — {}, root {root}",
        if *ok {
            "log verified"
        } else {
            "LOG DOES NOT VERIFY"
        },
        count(*size, "entry", "entries")
    );
    if let Some(old) = consistent_with {
        s.push_str(&format!(
            ", consistent with the size-{old} head seen before"
        ));
    }
    if !failed.is_empty() {
        let what = noun(failed.len(), "failed entry", "failed entries");
        s.push_str(&format!("; {what}: {}", join(failed)));
    }
    if !missing.is_empty() {
        let what = noun(missing.len(), "missing entry", "missing entries");
        s.push_str(&format!("; {what}: {}", join(missing)));
    }
    if *root_matches == Some(false) {
        s.push_str("; root recomputed from the entries does not match");
    }
    if !cosigned.is_empty() {
        let by: Vec<String> = cosigned
            .iter()
            .map(|(server, size)| format!("{server} at {size}"))
            .collect();
        s.push_str(&format!("; cosigned by {}", by.join(", ")));
    }
    if !unknown_cosigners.is_empty() {
        s.push_str(&format!(
            "; cosignature lines of unknown keys ignored: {}",
            unknown_cosigners.join(", ")
        ));
    }
    s.push_str(&format!("; head signed {age} s ago"));
    if *stale {
        s.push_str(" (STALE)");
    }
    for p in problems {
        s.push_str(&format!("\n!! {p}"));
    }
    for kind in evidence {
        s.push_str(&format!(
            "\n!! evidence kept on this device: {kind} (`rdv evidence export --topic {topic}`)"
        ));
    }
    s
}

/// `1 entry`, `2 entries`.
pub(super) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `one` for a single item, else `many`.
fn noun(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar).
pub(super) fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `device list` lines and `sync`'s notices of devices added.
fn device_text(output: &Output) -> String {
    match output {
        Output::Device {
            id,
            created,
            last_seen,
            this_device,
            endorsed_by,
        } => format!(
            "{id}  created {}  last seen {}{}{}",
            utc(*created),
            seen(*last_seen),
            match endorsed_by {
                Some(e) => format!("  endorsed by {e}"),
                None => String::new(),
            },
            if *this_device { "  (this device)" } else { "" }
        ),
        Output::DeviceAdded { id, endorser } => {
            format!("device {id} was added to this account, endorsed by device {endorser}")
        }
        Output::DeviceAddedUnverified {
            id,
            endorser,
            error,
        } => format!(
            "warning: the server says device {} was added, endorsed by {}, but that does not verify: {error}",
            id.as_deref().unwrap_or("?"),
            endorser.as_deref().unwrap_or("?")
        ),
        Output::IdentityKeyReceived { from, to } => format!(
            "another device rotated this account's identity key from {from} to {to}; this device now holds the new key"
        ),
        Output::IdentityKeyRefused { from, to, error } => format!(
            "warning: the server says the identity key was rotated from {} to {}, but this device did not take it: {error}",
            from.as_deref().unwrap_or("?"),
            to.as_deref().unwrap_or("?")
        ),
        _ => String::new(),
    }
}
