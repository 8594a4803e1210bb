//! `rdv`'s arguments (clap): `rdv --home DIR [--json] <command>`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::ClientError;
use crate::tls::{Fingerprint, Trust};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{History, Role};

/// Rendezvous client: federated, end-to-end-encrypted group messaging.
#[derive(Debug, Parser)]
#[command(name = "rdv", version)]
pub struct Cli {
    /// Keystore directory of this device (created by `account register` / `device join`).
    #[arg(long, env = "RDV_HOME", global = true, default_value = ".rdv")]
    pub home: PathBuf,
    /// Read the keystore's passphrase from the first line of this file (else `RDV_PASSPHRASE`,
    /// else it is asked on the terminal).
    #[arg(long, global = true, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Devices of this account.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Send a message (the text argument, or standard input when it is absent or `-`).
    Send {
        /// The topic.
        topic: TopicId,
        /// The message text.
        text: Option<String>,
    },
    /// Read new entries of a topic, verified.
    Read {
        /// The topic.
        topic: TopicId,
    },
    /// Follow all topics live.
    Watch,
    /// Verify a topic's whole log.
    Verify {
        /// The topic.
        topic: TopicId,
    },
    /// Fetch topic keys from the inbox and refill pre keys and topic keys if needed.
    Sync,
    /// Evidence against hosting servers kept on this device.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// The keystore's passphrase.
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Contacts: verification codes and the keys accepted from their directories.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Your homeserver's identity directory: self-monitoring and its alarms.
    #[command(subcommand)]
    Directory(DirectoryCommand),
}

/// `rdv passphrase …`.
#[derive(Debug, Subcommand)]
pub enum PassphraseCommand {
    /// Lock the keystore with a new passphrase (the current one as for any command; the new one
    /// from --new-passphrase-file, else asked twice on the terminal).
    Change {
        /// Read the new passphrase from the first line of this file.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
    },
}

/// `rdv contact …` (`directory.md` §7).
#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Show the verification code (and a QR code) to compare with the contact; with
    /// `--confirm`, mark the contact verified for that key.
    Verify {
        /// The contact.
        user: UserId,
        /// The codes matched: mark the contact verified.
        #[arg(long)]
        confirm: bool,
    },
    /// List contacts: key fingerprint, state, where the key was accepted.
    List,
    /// Accept the changed key of an unverified contact (shown first).
    Accept {
        /// The contact.
        user: UserId,
    },
}

/// `rdv directory …` (`directory.md` §6.3).
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Check every new entry of your homeserver's directory for keys you do not hold.
    Check,
    /// Acknowledge the alarm of a directory entry: it is no longer shown.
    Ack {
        /// The entry's index.
        index: u64,
    },
}

/// `rdv evidence …`.
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Print the evidence kept (one `evidence` line each, CBOR in hex) and with `--out` write it
    /// to a file: the `evidence` CBOR items of `tag-log.md` §8.2, one after another.
    Export {
        /// Only the evidence against this topic's hosting server.
        #[arg(long)]
        topic: Option<TopicId>,
        /// The file to write.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// How the server certificate is trusted (exactly one).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TrustArgs {
    /// Pin the server certificate's fingerprint, as the server printed it (`sha256:<hex>`).
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Trust the CA certificates in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Trust the operating system's root certificates.
    #[arg(long)]
    pub system_roots: bool,
}

impl TrustArgs {
    /// The trust mode given.
    pub fn trust(&self) -> Result<Trust, ClientError> {
        if let Some(fp) = &self.fingerprint {
            return Ok(Trust::Pinned(fp.parse::<Fingerprint>()?));
        }
        if let Some(path) = &self.ca_file {
            let path = std::path::absolute(path).map_err(|e| ClientError::io(path, e))?;
            return Ok(Trust::CaFile(path));
        }
        Ok(Trust::SystemRoots)
    }
}

/// `rdv account …`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Register a new user with an operator's one-time pin; this device becomes its first.
    Register {
        /// Server URL, `https://host[:port]`.
        #[arg(long)]
        server: String,
        /// Certificate trust.
        #[command(flatten)]
        trust: TrustArgs,
        /// One-time registration pin from the operator.
        #[arg(long)]
        pin: String,
        /// The user id, `@name:server`.
        #[arg(long)]
        user: UserId,
    },
    /// Show the account and key stock.
    Status,
}

/// `rdv device …`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Show a link code for a new device and wait for it to join.
    Link,
    /// Join an account as a new device with the link code shown by an existing device.
    Join {
        /// Server URL, `https://host[:port]`.
        #[arg(long)]
        server: String,
        /// Certificate trust.
        #[command(flatten)]
        trust: TrustArgs,
        /// The link code.
        #[arg(long)]
        code: String,
    },
    /// List this account's devices.
    List,
    /// Remove a device for good (key id or a unique prefix).
    Remove {
        /// The device's key id (hex) or a unique prefix.
        device: String,
        /// The device was lost or stolen: also rotate the Identity Key (its copy of the old one
        /// then adds nothing) and move every topic membership to the new key.
        #[arg(long)]
        lost: bool,
    },
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Reads, posts and changes the topic.
    Admin,
    /// Reads and posts.
    Writer,
    /// Reads only.
    Reader,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Writer => Role::Writer,
            RoleArg::Reader => Role::Reader,
        }
    }
}

/// A history setting on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryArg {
    /// New members can read older messages.
    Shared,
    /// New members cannot read anything from before they joined.
    Protected,
}

impl From<HistoryArg> for History {
    fn from(h: HistoryArg) -> History {
        match h {
            HistoryArg::Shared => History::Shared,
            HistoryArg::Protected => History::Protected,
        }
    }
}

/// `rdv topic …`.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic with you as admin.
    Create {
        /// Members who may post (repeatable).
        #[arg(long = "member")]
        members: Vec<UserId>,
        /// Members who may only read (repeatable).
        #[arg(long = "reader")]
        readers: Vec<UserId>,
        /// Further admins (repeatable).
        #[arg(long = "admin")]
        admins: Vec<UserId>,
        /// Whether new members can read older messages.
        #[arg(long, value_enum, default_value = "shared")]
        history: HistoryArg,
    },
    /// Add members.
    Add {
        /// The topic.
        topic: TopicId,
        /// The users to add.
        #[arg(required = true)]
        users: Vec<UserId>,
        /// Their role.
        #[arg(long, value_enum, default_value = "writer")]
        role: RoleArg,
        /// In a shared topic, give them only the current epoch's key: they cannot read the
        /// messages from before they joined (by default they can).
        #[arg(long)]
        no_history: bool,
    },
    /// Remove members.
    Remove {
        /// The topic.
        topic: TopicId,
        /// The users to remove.
        #[arg(required = true)]
        users: Vec<UserId>,
    },
    /// Change a member's role.
    Role {
        /// The topic.
        topic: TopicId,
        /// The member.
        user: UserId,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Start a new key epoch.
    Rekey {
        /// The topic.
        topic: TopicId,
    },
    /// Move your membership to your current Identity Key and a new Topic Key (after a
    /// rotation; what `device remove --lost` does for every topic).
    Move {
        /// The topic.
        topic: TopicId,
    },
    /// List your topics.
    List,
}
