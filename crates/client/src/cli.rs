//! The `rdv` command line: argument parsing (clap) and the commands, over [`Client`].
//!
//! `rdv --home DIR [--json] <command>`. Human output by default; `--json` prints one JSON object
//! per line. The binary `src/bin/rdv.rs` only parses, runs and prints the error line.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::tls::{Fingerprint, Trust};
use super::{Client, ClientError, EntryContent, EntryReport, ReadReport};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::topic::{History, Role};

/// Rendezvous client: federated, end-to-end-encrypted group messaging.
#[derive(Debug, Parser)]
#[command(name = "rdv", version)]
pub struct Cli {
    /// Keystore directory of this device (created by `account register` / `device join`).
    #[arg(long, env = "RDV_HOME", global = true, default_value = ".rdv")]
    pub home: PathBuf,
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
    fn trust(&self) -> Result<Trust, ClientError> {
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
        /// In a shared topic, also give them the keys of earlier epochs.
        #[arg(long)]
        share_history: bool,
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
    /// List your topics.
    List,
}

/// Prints results as text or JSON lines.
struct Out {
    json: bool,
}

impl Out {
    fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    fn entry(&self, topic: &TopicId, e: &EntryReport) {
        let (value, text) = match &e.content {
            EntryContent::Message {
                sender,
                epoch,
                text,
            } => (
                json!({"type": "message", "topic": topic.as_str(), "index": e.index,
                       "sender": sender, "epoch": epoch, "text": text,
                       "verified": e.verified(), "problems": e.problems}),
                format!(
                    "[{}] {sender}: {}",
                    e.index,
                    text.as_deref().unwrap_or("<cannot decrypt>")
                ),
            ),
            EntryContent::Change {
                author,
                description,
                epoch,
            } => (
                json!({"type": "change", "topic": topic.as_str(), "index": e.index,
                       "author": author, "change": description, "epoch": epoch,
                       "verified": e.verified(), "problems": e.problems}),
                format!("[{}] * {author}: {description} (epoch {epoch})", e.index),
            ),
            EntryContent::Invalid => (
                json!({"type": "invalid", "topic": topic.as_str(), "index": e.index,
                       "verified": false, "problems": e.problems}),
                format!("[{}] <invalid entry>", e.index),
            ),
        };
        self.emit(value, || {
            if e.verified() {
                text
            } else {
                format!("{text}  !! NOT VERIFIED: {}", e.problems.join("; "))
            }
        });
    }

    fn read(&self, r: &ReadReport) {
        for e in &r.entries {
            self.entry(&r.topic, e);
        }
        if !r.missing.is_empty() {
            self.emit(
                json!({"type": "missing", "topic": r.topic.as_str(), "indices": r.missing}),
                || {
                    format!(
                        "!! MISSING log entries of {}: {}",
                        r.topic,
                        join(&r.missing)
                    )
                },
            );
        }
    }
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

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

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), ClientError> {
    let out = Out { json: cli.json };
    let home = cli.home;
    match cli.command {
        Command::Account(AccountCommand::Register {
            server,
            trust,
            pin,
            user,
        }) => {
            let client = Client::register(&home, &server, trust.trust()?, &pin, &user).await?;
            out.emit(
                json!({"type": "registered", "user": client.user().as_str(),
                       "server": client.server_name().as_str()}),
                || format!("registered {} on {}", client.user(), client.server_name()),
            );
        }
        Command::Account(AccountCommand::Status) => {
            let mut client = Client::open(&home)?;
            let s = client.key_status().await?;
            out.emit(
                json!({"type": "status", "user": client.user().as_str(),
                       "prekeys_left": s.prekeys_left, "topic_keys_left": s.topic_keys_left,
                       "refill": s.refill}),
                || {
                    format!(
                        "{}: {} pre keys left on this device, {} topic keys left{}",
                        client.user(),
                        s.prekeys_left,
                        s.topic_keys_left,
                        if s.refill {
                            " (refill needed: run `rdv sync`)"
                        } else {
                            ""
                        }
                    )
                },
            );
        }
        Command::Device(DeviceCommand::Link) => {
            let mut client = Client::open(&home)?;
            let pending = client.link_offer_start().await?;
            let code = pending.code();
            out.emit(json!({"type": "link_code", "code": code.as_str()}), || {
                format!(
                    "On the new device run:\n  rdv --home <dir> device join --server <url> <trust> --code {}\nWaiting up to 10 minutes…",
                    code.as_str()
                )
            });
            client
                .link_offer_finish(pending, Duration::from_secs(600))
                .await?;
            out.emit(json!({"type": "linked"}), || "device linked".into());
        }
        Command::Device(DeviceCommand::Join {
            server,
            trust,
            code,
        }) => {
            let client = Client::link_join(&home, &server, trust.trust()?, &code).await?;
            out.emit(
                json!({"type": "joined", "user": client.user().as_str()}),
                || format!("this device now belongs to {}", client.user()),
            );
        }
        Command::Device(DeviceCommand::List) => {
            let mut client = Client::open(&home)?;
            for d in client.devices().await? {
                let id = d.device_key.key_id().to_hex();
                out.emit(
                    json!({"type": "device", "id": id, "created": d.created,
                           "last_seen": d.last_seen, "this_device": d.this_device}),
                    || {
                        format!(
                            "{id}  created {}  last seen {}{}",
                            d.created,
                            d.last_seen,
                            if d.this_device { "  (this device)" } else { "" }
                        )
                    },
                );
            }
        }
        Command::Device(DeviceCommand::Remove { device }) => {
            let mut client = Client::open(&home)?;
            let removed = client.remove_device(&device).await?;
            let id = removed.key_id().to_hex();
            out.emit(json!({"type": "device_removed", "id": id}), || {
                format!("removed device {id}")
            });
        }
        Command::Topic(cmd) => topic(&home, &out, cmd).await?,
        Command::Send { topic, text } => {
            let text = read_text(text)?;
            let mut client = Client::open(&home)?;
            match client.send(&topic, &text).await {
                Ok(index) => out.emit(
                    json!({"type": "sent", "topic": topic.as_str(), "index": index}),
                    || format!("sent to {topic} at index {index}"),
                ),
                // Accepted by our server and queued for the topic's hosting server.
                Err(ClientError::Queued { host, .. }) => out.emit(
                    json!({"type": "queued", "topic": topic.as_str(), "host": host}),
                    || format!("queued for {host}: appears in {topic} when {host} takes it"),
                ),
                Err(e) => return Err(e),
            }
        }
        Command::Read { topic } => {
            let mut client = Client::open(&home)?;
            let report = client.read(&topic).await?;
            out.read(&report);
        }
        Command::Watch => {
            let mut client = Client::open(&home)?;
            client
                .watch(|topic, result| match result {
                    Ok(r) => out.read(r),
                    Err(e) => out.emit(
                        json!({"type": "error", "topic": topic.as_str(), "error": e.to_string(),
                               "code": e.code().map(|c| c.as_str())}),
                        || format!("!! {topic}: {e}"),
                    ),
                })
                .await?;
        }
        Command::Verify { topic } => {
            let mut client = Client::open(&home)?;
            let r = client.verify(&topic).await?;
            for e in &r.failed {
                out.entry(&r.topic, e);
            }
            out.emit(
                json!({"type": "verify", "topic": topic.as_str(), "ok": r.ok(), "size": r.size,
                       "root": r.root, "consistent_with": r.consistent_with,
                       "root_matches": r.root_matches, "failed": r.failed.iter().map(|e| e.index).collect::<Vec<_>>(),
                       "missing": r.missing, "host_size": r.witnesses.host_size,
                       "cosigned": r.witnesses.cosigned, "problems": r.witnesses.problems}),
                || {
                    let mut s = format!(
                        "{topic}: {} — {} entries, root {}",
                        if r.ok() { "log verified" } else { "LOG DOES NOT VERIFY" },
                        r.size,
                        r.root
                    );
                    if let Some(old) = r.consistent_with {
                        s.push_str(&format!(", consistent with the size-{old} head seen before"));
                    }
                    if !r.failed.is_empty() {
                        let idx: Vec<u64> = r.failed.iter().map(|e| e.index).collect();
                        s.push_str(&format!("; failed entries: {}", join(&idx)));
                    }
                    if !r.missing.is_empty() {
                        s.push_str(&format!("; missing entries: {}", join(&r.missing)));
                    }
                    if r.root_matches == Some(false) {
                        s.push_str("; root recomputed from the entries does not match");
                    }
                    if !r.witnesses.cosigned.is_empty() {
                        let by: Vec<String> = r
                            .witnesses
                            .cosigned
                            .iter()
                            .map(|(server, size)| format!("{server} at {size}"))
                            .collect();
                        s.push_str(&format!("; cosigned by {}", by.join(", ")));
                    }
                    for p in &r.witnesses.problems {
                        s.push_str(&format!("\n!! {p}"));
                    }
                    s
                },
            );
            if !r.ok() {
                return Err(ClientError::Misbehaved(format!(
                    "the log of {topic} does not verify"
                )));
            }
        }
        Command::Sync => {
            let mut client = Client::open(&home)?;
            let inbox = client.sync_inbox().await?;
            let status = client.refill(false).await?;
            out.emit(
                json!({"type": "synced", "topic_keys_received": inbox.topic_keys,
                       "failed": inbox.failed.iter().map(|(s, e)| json!({"seq": s, "error": e})).collect::<Vec<_>>(),
                       "refilled": status.refill}),
                || {
                    let mut s = format!("received {} topic keys", inbox.topic_keys);
                    for (seq, e) in &inbox.failed {
                        s.push_str(&format!("; inbox item {seq} unusable: {e}"));
                    }
                    if status.refill {
                        s.push_str("; refilled pre keys and topic keys");
                    }
                    s
                },
            );
        }
    }
    Ok(())
}

async fn topic(home: &std::path::Path, out: &Out, cmd: TopicCommand) -> Result<(), ClientError> {
    let mut client = Client::open(home)?;
    match cmd {
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
            let history = match history {
                HistoryArg::Shared => History::Shared,
                HistoryArg::Protected => History::Protected,
            };
            let topic = client.create_topic(&all, history).await?;
            out.emit(
                json!({"type": "topic_created", "topic": topic.as_str()}),
                || format!("created {topic}"),
            );
        }
        TopicCommand::Add {
            topic,
            users,
            role,
            share_history,
        } => {
            let members: Vec<(UserId, Role)> =
                users.into_iter().map(|u| (u, role.into())).collect();
            let index = client.add_members(&topic, &members, share_history).await?;
            out.emit(
                json!({"type": "changed", "topic": topic.as_str(), "index": index}),
                || format!("added to {topic} (log index {index})"),
            );
        }
        TopicCommand::Remove { topic, users } => {
            let index = client.remove_members(&topic, &users).await?;
            out.emit(
                json!({"type": "changed", "topic": topic.as_str(), "index": index}),
                || format!("removed from {topic} (log index {index})"),
            );
        }
        TopicCommand::Role { topic, user, role } => {
            let index = client.set_role(&topic, &user, role.into()).await?;
            out.emit(
                json!({"type": "changed", "topic": topic.as_str(), "index": index}),
                || format!("role changed in {topic} (log index {index})"),
            );
        }
        TopicCommand::Rekey { topic } => {
            let index = client.rekey(&topic).await?;
            out.emit(
                json!({"type": "changed", "topic": topic.as_str(), "index": index}),
                || format!("new epoch in {topic} (log index {index})"),
            );
        }
        TopicCommand::List => {
            for t in client.topics().await? {
                out.emit(
                    json!({"type": "topic", "topic": t.topic.as_str(), "size": t.size,
                           "role": t.role.name(), "epoch": t.epoch}),
                    || {
                        format!(
                            "{}  {}  {} entries, epoch {}",
                            t.topic,
                            t.role.name(),
                            t.size,
                            t.epoch
                        )
                    },
                );
            }
        }
    }
    Ok(())
}
