//! `rdv contact …`, `rdv directory …`, and what every command shows of the identity directory
//! (`directory.md` §6.3, §7): self-monitoring when due, its alarms until acknowledged, and the
//! contacts' key rotations followed. Their texts are here too.

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use super::args::{ContactCommand, DirectoryCommand};
use super::output::Output;
use super::passphrase::Unlock;
use super::printer::Sink;
use crate::{ClientError, Contact, DirectoryAlarm, MonitorSummary};

/// Before a command: a monitoring pass when one is due (`MONITOR_EVERY`), its warnings, and
/// every alarm not acknowledged. Nothing here fails the command: a pass that cannot be made
/// is a warning.
pub(super) async fn preflight(home: &Unlock, out: &mut dyn Sink) {
    let Ok(mut client) = home.open() else {
        return;
    };
    match client.monitor_if_due().await {
        Ok(Some(summary)) => warnings(&summary, out),
        Ok(None) => {}
        Err(e) => out.warn(Output::DirectoryWarning {
            code: e.error_code().to_owned(),
            warning: format!(
                "the identity directory of {} could not be checked{}: {e}",
                client.server_name(),
                if e.is_unavailable() {
                    " now (the command goes on)"
                } else {
                    ""
                }
            ),
        }),
    }
    if let Ok(alarms) = client.directory_alarms() {
        for alarm in &alarms {
            out.warn(alarm_output(alarm));
        }
    }
}

/// After a command: the contacts' key rotations it followed, once each.
pub(super) fn rotations(home: &Unlock, out: &mut dyn Sink) {
    let Ok(client) = home.open() else {
        return;
    };
    for r in client.take_rotations().unwrap_or_default() {
        out.warn(Output::IdentityRotated {
            user: r.user,
            from: r.from,
            to: r.to,
        });
    }
}

fn warnings(summary: &MonitorSummary, out: &mut dyn Sink) {
    for (index, why) in &summary.invalid {
        out.warn(Output::DirectoryWarning {
            code: "directory_invalid_entry".into(),
            warning: format!(
                "entry {index} of the directory of {} breaks a rule: {why}",
                summary.server
            ),
        });
    }
    for (index, key) in &summary.pending_rotations {
        out.warn(Output::DirectoryWarning {
            code: "directory_rotation_pending".into(),
            warning: format!(
                "entry {index} of the directory of {} rotates your identity key to {key}, signed \
                 by your key, and this device has not received the new key yet: run rdv sync",
                summary.server
            ),
        });
    }
    if summary.stale {
        out.warn(Output::DirectoryStale {
            server: summary.server.clone(),
            age: summary.witness_age.unwrap_or_default(),
        });
    }
}

fn alarm_output(a: &DirectoryAlarm) -> Output {
    Output::DirectoryForeignKey {
        server: a.server.clone(),
        index: a.index,
        identity_key: a.identity_key.clone(),
        evidence: a.evidence.clone(),
    }
}

fn contact_output(c: Contact) -> Output {
    Output::Contact {
        user: c.user,
        fingerprint: c.fingerprint,
        state: c.state.to_owned(),
        index: c.index,
        size: c.size,
        changed_to: c.changed_to,
    }
}

/// `rdv contact …`.
pub(super) async fn contact(
    home: &Unlock,
    cmd: ContactCommand,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    let mut client = home.open()?;
    match cmd {
        ContactCommand::Verify { user, confirm } => {
            let code = client.contact_code(&user, confirm).await?;
            out.emit(Output::SafetyCode {
                user: code.user.to_string(),
                identity_key: code.identity_key,
                code: code.code,
                qr_payload: code.qr,
                verified: code.verified,
            });
        }
        ContactCommand::List => {
            for c in client.contacts()? {
                out.emit(contact_output(c));
            }
        }
        ContactCommand::Accept { user } => {
            out.emit(contact_output(client.accept_contact(&user).await?));
        }
    }
    Ok(())
}

/// `rdv directory …`: `check` fails with `directory_foreign_key` while an alarm is not
/// acknowledged.
pub(super) async fn directory(
    home: &Unlock,
    cmd: DirectoryCommand,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    let mut client = home.open()?;
    match cmd {
        DirectoryCommand::Check => {
            let summary = client.monitor_directory().await?;
            warnings(&summary, out);
            let alarms = client.directory_alarms()?;
            for alarm in &alarms {
                out.warn(alarm_output(alarm));
            }
            out.emit(Output::DirectoryChecked {
                server: summary.server.clone(),
                size: summary.size,
                checked: summary.checked,
                witnessed_by: summary.witnessed_by.clone(),
                witness_age: summary.witness_age,
                alarms: alarms.iter().map(|a| a.index).collect(),
            });
            if !alarms.is_empty() {
                let list: Vec<String> = alarms.iter().map(|a| a.index.to_string()).collect();
                return Err(ClientError::ForeignKey {
                    server: summary.server,
                    indices: list.join(", "),
                });
            }
        }
        DirectoryCommand::Ack { index } => {
            client.ack_directory_alarm(index)?;
            out.emit(Output::AlarmAcked { index });
        }
    }
    Ok(())
}

/// The text of a directory answer, `None` for the others.
pub(super) fn text(output: &Output) -> Option<String> {
    Some(match output {
        Output::SafetyCode {
            user,
            code,
            qr_payload,
            verified: false,
            ..
        } => format!(
            "verification code with {user}:\n  {code}\n{}\nCompare it with {user}'s (in person or over another channel); if they match, run `rdv contact verify --confirm {user}`",
            qr_text(qr_payload)
        ),
        Output::SafetyCode { user, code, .. } => {
            format!("{user} verified (code {code})")
        }
        Output::Contact {
            user,
            fingerprint,
            state,
            index,
            size,
            changed_to,
        } => format!(
            "{user}  {fingerprint}  {state}  entry {index} at size {size}{}",
            changed_to
                .as_ref()
                .map(|k| format!(
                    "  (directory now binds {k}: `rdv contact accept {user}` after checking)"
                ))
                .unwrap_or_default()
        ),
        Output::IdentityRotated { user, from, to } => {
            format!(
                "rdv: {user} rotated their identity key from {from} to {to} (signed by the old key)"
            )
        }
        Output::DirectoryForeignKey {
            server,
            index,
            identity_key,
            evidence,
        } => format!(
            "rdv: ALARM: entry {index} of the directory of {server} binds you to identity key {identity_key}, which no device of yours holds: someone may be impersonating you. Evidence: {evidence}. `rdv directory ack {index}` silences this"
        ),
        Output::DirectoryStale { server, age } => format!(
            "rdv: warning: no witness has confirmed the directory of {server} for {age} s: it may be frozen"
        ),
        Output::DirectoryWarning { warning, .. } => format!("rdv: warning: {warning}"),
        Output::DirectoryChecked {
            server,
            size,
            checked,
            witnessed_by,
            alarms,
            ..
        } => format!(
            "directory of {server}: size {size}, {checked} new entries checked, witnessed by {}; {}",
            if witnessed_by.is_empty() {
                "nobody".to_owned()
            } else {
                witnessed_by.join(", ")
            },
            if alarms.is_empty() {
                "no alarm".to_owned()
            } else {
                format!("{} alarm(s)", alarms.len())
            }
        ),
        Output::AlarmAcked { index } => format!("alarm of entry {index} acknowledged"),
        Output::MirrorRefused {
            topic,
            index,
            user,
            identity_key,
        } => format!(
            "{topic} #{index}: refused by your homeserver's mirror: it names {user} with identity key {identity_key}, not theirs"
        ),
        _ => return None,
    })
}

/// The QR code of `payload` for a terminal (two rows per character), or a note when it
/// cannot be made.
fn qr_text(payload: &str) -> String {
    match QrCode::new(payload.as_bytes()) {
        Ok(code) => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build(),
        Err(e) => format!("(no QR code: {e})"),
    }
}
