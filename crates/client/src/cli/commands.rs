//! The commands: each runs over [`Client`] and hands its answers to the sink as [`Output`]s.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::args::{AccountCommand, DeviceCommand, TopicCommand};
use super::output::{ChangeKind, Output};
use super::passphrase::Unlock;
use super::printer::Sink;
use crate::tls::Trust;
use crate::{Client, ClientError};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::Role;

/// How long `device link` waits for the new device.
const LINK_WAIT: Duration = Duration::from_secs(600);

/// `rdv account …`.
pub(super) async fn account(
    home: &Unlock,
    cmd: AccountCommand,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    match cmd {
        AccountCommand::Register {
            server,
            trust,
            pin,
            user,
        } => {
            let trust = trust.trust()?;
            let passphrase = home.new_passphrase()?;
            let client =
                Client::register(home.dir(), &passphrase, &server, trust, &pin, &user).await?;
            out.emit(Output::Registered {
                user: client.user().to_string(),
                server: client.server_name().to_string(),
            });
        }
        AccountCommand::Status => {
            let mut client = home.open()?;
            let status = client.key_status().await?;
            out.emit(Output::status(client.user().as_str(), &status));
        }
    }
    Ok(())
}

/// `rdv device …`.
pub(super) async fn device(
    home: &Unlock,
    cmd: DeviceCommand,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    match cmd {
        DeviceCommand::Link => {
            let mut client = home.open()?;
            let pending = client.link_offer_start().await?;
            let code = pending.code();
            out.emit(Output::LinkCode {
                code: code.to_string(),
                command: join_command(client.server_url(), &client.trust()?, &code),
            });
            client.link_offer_finish(pending, LINK_WAIT).await?;
            out.emit(Output::Linked);
        }
        DeviceCommand::Join {
            server,
            trust,
            code,
        } => {
            let trust = trust.trust()?;
            let passphrase = home.new_passphrase()?;
            let client = Client::link_join(home.dir(), &passphrase, &server, trust, &code).await?;
            out.emit(Output::Joined {
                user: client.user().to_string(),
            });
        }
        DeviceCommand::List => {
            let mut client = home.open()?;
            for d in client.devices().await? {
                out.emit(Output::device(&d));
            }
        }
        DeviceCommand::Remove { device, lost } => {
            let mut client = home.open()?;
            let removed = client.remove_device(&device).await?;
            out.emit(Output::DeviceRemoved {
                id: removed.key_id().to_hex(),
            });
            if lost {
                rotate_and_move(&mut client, out).await?;
            }
        }
    }
    Ok(())
}

/// `device remove --lost` after the removal (`devices.md` §5.4, `directory.md` §8): a new
/// Identity Key, then every topic membership moved to it. Topics that could not be moved now
/// are named in the error; `rdv topic move` moves them later.
async fn rotate_and_move(client: &mut Client, out: &mut dyn Sink) -> Result<(), ClientError> {
    use rendezvous_protocol::crypto::sign::hex_string;
    let from = hex_string(client.identity_key().as_bytes());
    let to = client.rotate_identity().await?;
    out.emit(Output::IdentityRotated {
        user: client.user().to_string(),
        from,
        to: hex_string(to.as_bytes()),
    });
    let mut failed = Vec::new();
    for (topic, moved) in client.move_topics().await? {
        match moved {
            Ok(Some(index)) => out.emit(Output::Changed {
                topic: topic.to_string(),
                index,
                change: ChangeKind::Moved,
            }),
            Ok(None) => {}
            Err(e) => failed.push(format!("{topic} ({}: {e})", e.error_code())),
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(ClientError::TopicsNotMoved {
        topics: failed.join("; "),
    })
}

/// The command that joins a new device to this one's account: the same server, the same trust.
pub(super) fn join_command(server: &str, trust: &Trust, code: &str) -> String {
    let trust = match trust {
        Trust::Pinned(fp) => format!("--fingerprint {fp}"),
        Trust::CaFile(path) => format!("--ca-file {}", shell_word(&path.display().to_string())),
        Trust::SystemRoots => "--system-roots".to_owned(),
    };
    format!(
        "rdv device join --server {} {trust} --code {}",
        shell_word(server),
        shell_word(code)
    )
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `rdv topic …`.
pub(super) async fn topic(
    home: &Unlock,
    cmd: TopicCommand,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    let mut client = home.open()?;
    let (topic, index, change) = match cmd {
        TopicCommand::Create {
            members,
            readers,
            admins,
            history,
        } => {
            let mut all: Vec<(UserId, Role)> = Vec::new();
            all.extend(admins.into_iter().map(|u| (u, Role::Admin)));
            all.extend(members.into_iter().map(|u| (u, Role::Writer)));
            all.extend(readers.into_iter().map(|u| (u, Role::Reader)));
            let topic = client.create_topic(&all, history.into()).await?;
            out.emit(Output::TopicCreated {
                topic: topic.to_string(),
            });
            return Ok(());
        }
        TopicCommand::List => {
            for t in client.topics().await? {
                out.emit(Output::topic(&t));
            }
            return Ok(());
        }
        TopicCommand::Add {
            topic,
            users,
            role,
            no_history,
        } => {
            let members: Vec<(UserId, Role)> =
                users.into_iter().map(|u| (u, role.into())).collect();
            let index = if no_history {
                client.add_members_without_history(&topic, &members).await?
            } else {
                client.add_members(&topic, &members).await?
            };
            (topic, index, ChangeKind::Added)
        }
        TopicCommand::Remove { topic, users } => {
            let index = client.remove_members(&topic, &users).await?;
            (topic, index, ChangeKind::Removed)
        }
        TopicCommand::Role { topic, user, role } => {
            let index = client.set_role(&topic, &user, role.into()).await?;
            (topic, index, ChangeKind::RoleChanged)
        }
        TopicCommand::Rekey { topic } => {
            let index = client.rekey(&topic).await?;
            (topic, index, ChangeKind::Rekeyed)
        }
        TopicCommand::Move { topic } => match client.move_topic(&topic).await? {
            Some(index) => (topic, index, ChangeKind::Moved),
            None => return Err(ClientError::AlreadyMoved(topic.to_string())),
        },
    };
    out.emit(Output::Changed {
        topic: topic.to_string(),
        index,
        change,
    });
    Ok(())
}

/// `rdv send`: the message's index, or where it is queued.
pub(super) async fn send(
    home: &Unlock,
    topic: &TopicId,
    text: Option<String>,
) -> Result<Output, ClientError> {
    let text = read_text(text)?;
    let mut client = home.open()?;
    match client.send(topic, &text).await {
        Ok(index) => Ok(Output::Sent {
            topic: topic.to_string(),
            index,
        }),
        // Accepted by our server and queued for the topic's hosting server.
        Err(ClientError::Queued { host, .. }) => Ok(Output::Queued {
            topic: topic.to_string(),
            host,
        }),
        Err(e) => Err(e),
    }
}

/// The message text: the argument, or standard input when it is absent or `-`.
fn read_text(text: Option<String>) -> Result<Vec<u8>, ClientError> {
    match text.as_deref() {
        Some(t) if t != "-" => Ok(t.as_bytes().to_vec()),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(rendezvous_protocol::message::MAX_PLAINTEXT as u64 + 1)
                .read_to_end(&mut buf)
                .map_err(|e| {
                    ClientError::InvalidInput(format!("cannot read standard input: {e}"))
                })?;
            Ok(buf)
        }
    }
}

/// `rdv watch`: every topic's new entries as they come, each line naming its topic.
pub(super) async fn watch(home: &Unlock, out: &mut dyn Sink) -> Result<(), ClientError> {
    let mut client = home.open()?;
    client
        .watch(|topic, result| match result {
            Ok(r) => Output::read(r, true).into_iter().for_each(|o| out.emit(o)),
            Err(e) => out.emit(Output::error(e, Some(topic))),
        })
        .await
}

/// `rdv read`: the head, the entries, the missing indices; an error after them when the read
/// reports a problem (`log_forked` with evidence, else `log_incomplete` naming the indices).
pub(super) async fn read(
    home: &Unlock,
    topic: &TopicId,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    let report = home.open()?.read(topic).await?;
    Output::read(&report, false)
        .into_iter()
        .for_each(|o| out.emit(o));
    // `directory.md` §6.4: a refused change, or members not checked yet.
    crate::reader::roster_gate(topic, &report.refused, &report.unchecked)?;
    if let Some(kind) = &report.forked {
        return Err(ClientError::LogForked {
            topic: topic.to_string(),
            kind: kind.clone(),
        });
    }
    if report.has_problems() {
        let mut indices: Vec<u64> = report.missing.clone();
        indices.extend(
            report
                .entries
                .iter()
                .filter(|e| !e.verified())
                .map(|e| e.index),
        );
        indices.sort_unstable();
        indices.dedup();
        return Err(ClientError::LogIncomplete {
            topic: topic.to_string(),
            indices,
            reason: "entries are missing or fail a check".into(),
        });
    }
    Ok(())
}

/// `rdv evidence export`: one `evidence` line per piece kept, and with `file` the CBOR items
/// one after another in that file.
pub(super) fn export_evidence(
    home: &Unlock,
    topic: Option<&TopicId>,
    file: Option<&Path>,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    let client = home.open()?;
    let found = client.evidence(topic)?;
    let mut bytes = Vec::new();
    for (t, kind, cbor) in &found {
        out.emit(Output::Evidence {
            topic: t.to_string(),
            host: t.server().to_string(),
            kind: kind.clone(),
            cbor: rendezvous_protocol::crypto::sign::hex_string(cbor),
        });
        bytes.extend_from_slice(cbor);
    }
    if found.is_empty() {
        out.emit(Output::NoEvidence {
            topic: topic.map(|t| t.to_string()),
        });
    }
    if let Some(path) = file {
        std::fs::write(path, &bytes).map_err(|e| ClientError::io(path, e))?;
    }
    Ok(())
}

/// `rdv verify`: the failed entries and the verdict; an error when the log does not verify.
pub(super) async fn verify(
    home: &Unlock,
    topic: &TopicId,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    let mut client = home.open()?;
    let report = client.verify(topic).await?;
    Output::verify(&report)
        .into_iter()
        .for_each(|o| out.emit(o));
    if let Some(kind) = report.evidence.first() {
        return Err(ClientError::LogForked {
            topic: topic.to_string(),
            kind: kind.clone(),
        });
    }
    if !report.ok() {
        return Err(ClientError::LogDoesNotVerify(topic.to_string()));
    }
    Ok(())
}

/// `rdv sync`: topic keys from the inbox (and a `device_added` line per notice of a device
/// added, an `identity_key_received` line per rotation by another device, each shown once),
/// then a refill if the server asks for one.
pub(super) async fn sync(home: &Unlock, out: &mut dyn Sink) -> Result<Output, ClientError> {
    let mut client = home.open()?;
    let inbox = client.sync_inbox().await?;
    for notice in &inbox.devices_added {
        out.emit(Output::device_added(notice));
    }
    for notice in &inbox.identity_rotations {
        out.emit(Output::identity_rotated(notice));
    }
    let status = client.refill(false).await?;
    // client-api.md §9: a queued post the hosting server refused later is a failure to show.
    let refused = client.take_refused_posts()?;
    if !refused.is_empty() {
        let list: Vec<String> = refused
            .iter()
            .map(|r| format!("a {} to {}: {} ({})", r.entry, r.topic, r.code, r.status))
            .collect();
        return Err(ClientError::PostRefused(list.join("; ")));
    }
    Ok(Output::synced(&inbox, status.refill))
}
