//! The `rdv` command line: arguments (`args`, clap), the commands (`commands`) over
//! [`Client`](crate::Client), and their answers as one type ([`Output`]) that is printed as text
//! or JSON in one place ([`Printer`]).
//!
//! `rdv --home DIR [--json] [--passphrase-file PATH] <command>`. The keystore's passphrase comes
//! from `--passphrase-file`, `RDV_PASSPHRASE` or the terminal (`passphrase`). Human output by
//! default; `--json` prints one JSON object per line, and a failure as exactly one
//! `{"type":"error","code":…,"error":…}` object (`client-api.md` §9). The binary `src/bin/rdv.rs` only parses, runs and prints.

mod args;
mod commands;
mod device_output;
mod directory;
mod output;
mod passphrase;
mod printer;
mod text;

#[cfg(test)]
mod tests;

pub use args::{
    AccountCommand, Cli, Command, ContactCommand, DeviceCommand, DirectoryCommand, EvidenceCommand,
    HistoryArg, PassphraseCommand, RoleArg, TopicCommand, TrustArgs,
};
pub use output::{ChangeKind, InboxFailure, Output};
pub use passphrase::PASSPHRASE_ENV;
pub use printer::{Printer, Sink};

use crate::ClientError;

/// Runs one command, handing its answers to `out`. Every command on an account first runs
/// the directory's self-monitoring when due and shows its alarms, and last shows the contacts'
/// key rotations it followed (`directory.md` §6.3, §6.1).
pub async fn run(cli: Cli, out: &mut dyn Sink) -> Result<(), ClientError> {
    let home = passphrase::Unlock::new(&cli.home, cli.passphrase_file);
    let on_account = !matches!(
        cli.command,
        Command::Account(AccountCommand::Register { .. })
            | Command::Device(DeviceCommand::Join { .. })
            | Command::Passphrase(_)
    ) && cli.home.join("config.json").is_file();
    let monitor = on_account && !matches!(cli.command, Command::Directory(_));
    if monitor {
        directory::preflight(&home, out).await;
    }
    let result = command(&home, cli.command, out).await;
    if on_account {
        directory::rotations(&home, out);
    }
    result
}

async fn command(
    home: &passphrase::Unlock,
    command: Command,
    out: &mut dyn Sink,
) -> Result<(), ClientError> {
    match command {
        Command::Account(cmd) => commands::account(home, cmd, out).await,
        Command::Device(cmd) => commands::device(home, cmd, out).await,
        Command::Topic(cmd) => commands::topic(home, cmd, out).await,
        Command::Send { topic, text } => {
            out.emit(commands::send(home, &topic, text).await?);
            Ok(())
        }
        Command::Read { topic } => commands::read(home, &topic, out).await,
        Command::Watch => commands::watch(home, out).await,
        Command::Verify { topic } => commands::verify(home, &topic, out).await,
        Command::Sync => {
            let synced = commands::sync(home, out).await?;
            out.emit(synced);
            Ok(())
        }
        Command::Evidence(EvidenceCommand::Export { topic, out: file }) => {
            commands::export_evidence(home, topic.as_ref(), file.as_deref(), out)
        }
        Command::Passphrase(PassphraseCommand::Change {
            new_passphrase_file,
        }) => {
            home.change(new_passphrase_file.as_deref())?;
            out.emit(Output::PassphraseChanged);
            Ok(())
        }
        Command::Contact(cmd) => directory::contact(home, cmd, out).await,
        Command::Directory(cmd) => directory::directory(home, cmd, out).await,
    }
}
