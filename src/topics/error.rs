//! Why the topic service refused or failed an operation. Each variant carries what was
//! expected and what came; `From<TopicError> for ApiError` (`crate::error`) is the one place
//! that turns it into a status and a code.

use rendezvous_protocol::ids::{ServerName, TopicId, UserId};
use rendezvous_protocol::message::MessageError;
use rendezvous_protocol::topic::{ChangeError, EntryError};
use rendezvous_protocol::wire::WireError;
use rendezvous_protocol::wire::signed::SignedError;

use super::relay::RelayError;
use crate::store::StoreError;

/// Result of the topic service.
pub type TopicResult<T> = Result<T, TopicError>;

/// Why a topic operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The topic is neither hosted nor mirrored here.
    #[error("no topic {topic}")]
    NoTopic {
        /// The topic asked for.
        topic: TopicId,
    },
    /// A query from a peer for a topic this server does not host.
    #[error("{topic} is not hosted here")]
    NotHostedHere {
        /// The topic asked for.
        topic: TopicId,
    },
    /// A creation for a topic id of another server.
    #[error("topic {topic} is not hosted on {here}")]
    CreateElsewhere {
        /// The topic the creation names.
        topic: TopicId,
        /// This server.
        here: ServerName,
    },
    /// An append through the host's paths to a topic another server hosts.
    #[error("{topic} is hosted by {}", topic.server())]
    HostedElsewhere {
        /// The topic.
        topic: TopicId,
    },
    /// Mirroring or submitting to a topic this server hosts itself.
    #[error("{topic} is hosted here")]
    HostedHere {
        /// The topic.
        topic: TopicId,
    },
    /// A `topic.entry` from a server that does not host the topic.
    #[error("{origin} does not host {topic}")]
    NotTheHost {
        /// The server the event came from.
        origin: ServerName,
        /// The topic it named.
        topic: TopicId,
    },
    /// A `topic.submit` sent to a server that does not host the topic.
    #[error("{topic} is not hosted here")]
    SubmitElsewhere {
        /// The topic.
        topic: TopicId,
    },
    /// The creator, author or sender of an entry is not the caller.
    #[error("the {role} must be the caller")]
    NotTheCaller {
        /// `creator`, `author` or `sender`.
        role: &'static str,
    },
    /// The caller's user is not a current member.
    #[error("not a member of this topic")]
    NotAMember,
    /// A member spec names a user of this server that does not exist.
    #[error("no user {user}")]
    NoUser {
        /// The user.
        user: UserId,
    },
    /// The Identity Key of an added member of another server could not be fetched.
    #[error("the identity of {user} could not be fetched")]
    IdentityUnfetched {
        /// The user.
        user: UserId,
    },
    /// A member spec's Identity Key is not the user's registered one.
    #[error("identity key given for {user} is not the one registered")]
    WrongIdentity {
        /// The user.
        user: UserId,
    },
    /// A server with no member in a topic took part in it (`federation-api.md` §9).
    #[error("{server} has no member in {topic}")]
    NoMember {
        /// The server.
        server: ServerName,
        /// The topic.
        topic: TopicId,
    },
    /// A mirror of a topic in which this server has no member (`federation-api.md` §9.2
    /// check 9).
    #[error("{server} has no member in this topic")]
    NoLocalMember {
        /// This server.
        server: ServerName,
    },
    /// This server mirrors as many topics of the hosting server as it allows
    /// (`federation.limits.mirrored_topics_per_peer`).
    #[error("{host} already has {max} topics mirrored here")]
    TooManyMirrors {
        /// The hosting server.
        host: ServerName,
        /// The quota.
        max: u64,
    },
    /// A cosignature for a topic this server neither hosts nor mirrors.
    #[error("{server} does not take part in {topic}")]
    NotTakingPart {
        /// This server.
        server: ServerName,
        /// The topic.
        topic: TopicId,
    },
    /// The mirror was stopped by evidence against its hosting server.
    #[error(
        "the hosting server showed this server a log that contradicts another it signed; the \
         evidence is kept and the topic's log is no longer followed"
    )]
    MirrorStopped,
    /// Evidence against the hosting server was found now (the mirror stops).
    #[error("{reason}")]
    SplitView {
        /// What contradicts what.
        reason: String,
    },
    /// A mirror without a checkpoint of its hosting server yet.
    #[error("no checkpoint from the hosting server yet")]
    NoHostCheckpoint,
    /// A checkpoint that does not parse, verify or match the entries.
    #[error("{reason}")]
    BadCheckpoint {
        /// What is wrong with it.
        reason: String,
    },
    /// A cosigned note without a valid cosignature of the server that sent it.
    #[error("no valid cosignature of {server}")]
    NoCosignature {
        /// The sender.
        server: ServerName,
    },
    /// Two first batches of one mirror raced.
    #[error("the topic's mirror started meanwhile; try again")]
    MirrorRace,
    /// A mirrored creation names another topic than the event.
    #[error("the creation names another topic")]
    CreationForAnotherTopic,
    /// A mirrored log that does not start with its creation.
    #[error("a topic's log starts with its creation")]
    LogWithoutCreation,
    /// An entry batch without entries.
    #[error("no entries")]
    NoEntries,
    /// A checkpoint asked for beyond the durable log.
    #[error("beyond the durable log (size {size}, durable {durable})")]
    BeyondDurable {
        /// The size asked for.
        size: u64,
        /// The durable size.
        durable: u64,
    },
    /// A backfill query from a position the log has not reached.
    #[error("the log has {size} entries")]
    BeyondLog {
        /// The log's durable size.
        size: u64,
    },
    /// A submitted entry of an unknown kind.
    #[error("unknown entry kind {kind}")]
    UnknownEntryKind {
        /// The kind byte.
        kind: u8,
    },
    /// A submitter who is not a user of the submitting server.
    #[error("{submitter} is not a user of {origin}")]
    WrongOrigin {
        /// The submitter named.
        submitter: UserId,
        /// The server that sent the event.
        origin: ServerName,
    },
    /// Backfill pages that never reach the batch.
    #[error("backfill does not end")]
    EndlessBackfill,
    /// A backfill page that starts elsewhere than asked.
    #[error("backfill from {from} answered from {got}")]
    BackfillMismatch {
        /// The position asked for.
        from: u64,
        /// The position answered.
        got: u64,
    },
    /// The operation needs federation, which is off on this server.
    #[error("{needs}: federation is not enabled")]
    FederationOff {
        /// What needed it.
        needs: String,
    },
    /// The hosting server refused a submitted post (`federation-api.md` §9.3).
    #[error("the hosting server refused the post: {status} {code}")]
    HostRefused {
        /// The event result's status.
        status: u16,
        /// The event result's code, as sent.
        code: String,
    },
    /// A query to or a queue for another server failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// Bytes that do not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A signed object that does not decode or verify.
    #[error(transparent)]
    Signed(#[from] SignedError),
    /// A message the topic rules refuse.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A change the topic rules refuse.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// A log entry that does not parse.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fault of this server (logged, answered `internal`).
    #[error("{context}: {detail}")]
    Internal {
        /// What was being done.
        context: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl TopicError {
    /// A fault of this server while doing `context`.
    pub(crate) fn internal(context: &'static str, detail: impl std::fmt::Display) -> Self {
        TopicError::Internal {
            context,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn bad_checkpoint(reason: impl std::fmt::Display) -> Self {
        TopicError::BadCheckpoint {
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use rendezvous_protocol::api::ErrorCode;

    #[test]
    fn federation_off_is_invalid() {
        let needs = TopicError::FederationOff {
            needs: "a member is on another server".into(),
        };
        assert_eq!(ApiError::from(needs).code, ErrorCode::Invalid);
    }

    #[test]
    fn a_hosting_servers_refusal_keeps_its_code_when_it_is_ours() {
        let known = TopicError::HostRefused {
            status: 409,
            code: "wrong_epoch".into(),
        };
        assert_eq!(ApiError::from(known).code, ErrorCode::WrongEpoch);
        let unknown = TopicError::HostRefused {
            status: 400,
            code: "no_such_code".into(),
        };
        let e = ApiError::from(unknown);
        assert_eq!(e.code, ErrorCode::Invalid);
        assert!(e.message.contains("400 no_such_code"), "{}", e.message);
    }

    #[test]
    fn relay_failures_keep_the_code_federation_chose() {
        let e = ApiError::from(TopicError::Relay(RelayError {
            code: ErrorCode::BadGateway,
            message: "b.example sent an invalid answer".into(),
        }));
        assert_eq!(e.code, ErrorCode::BadGateway);
        assert_eq!(e.message, "b.example sent an invalid answer");
    }
}
