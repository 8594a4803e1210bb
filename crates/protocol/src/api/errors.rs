//! Machine-readable error codes (`client-api.md` §1.1, `federation-api.md` §3.3, §4, §6).
//!
//! [`ErrorCode`] is every code that goes on the wire: in the client API's and the federation
//! API's JSON error bodies and in a transaction's per-event results. Each code fixes its HTTP
//! status ([`ErrorCode::status`]); `tests/spec_docs.rs` checks that each is documented, with that
//! status, in the spec's error tables.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The JSON error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Every error code the client and federation APIs send, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: body or parameter does not decode, or is not canonical.
    Malformed,
    /// 400: a signature in the body does not verify.
    BadSignature,
    /// 400: a field is out of range or inconsistent (the message says which).
    Invalid,
    /// 400, federation: a transaction or event for another server than the one receiving it
    /// (`federation-api.md` §3.3 check 3, §4).
    WrongDestination,
    /// 400, federation: an event whose `time` is more than 300 s ahead of the receiver's clock
    /// (`federation-api.md` §3.3 check 4).
    FromTheFuture,
    /// 400, federation: a checkpoint not signed by the hosting server or not matching the
    /// entries (`federation-api.md` §9).
    BadCheckpoint,
    /// 401: missing, unknown or expired token (federation: a client certificate not valid for
    /// the claimed server name).
    Unauthorized,
    /// 403: the caller may not do this.
    Forbidden,
    /// 403: the registration pin is unknown, used or expired.
    PinInvalid,
    /// 403: the account was disabled by the operator.
    UserDisabled,
    /// 403, federation: an event, or the user it names, is not of the server that sent it.
    WrongOrigin,
    /// 403, federation: the origin does not host the event's topic.
    NotHosting,
    /// 403, federation: the server has no member in the topic.
    NotParticipant,
    /// 404: no such resource.
    NotFound,
    /// 409: the hosting server signed contradictory logs; the mirror stopped.
    SplitView,
    /// 409: the user id is taken.
    UserExists,
    /// 409: the device key is already registered.
    DeviceExists,
    /// 409: the device key was revoked for good.
    DeviceRevoked,
    /// 409: nothing left to claim.
    Exhausted,
    /// 409, topic rule: only admins change a topic.
    NotAdmin,
    /// 409, topic rule: the change was built on another state.
    StaleChange,
    /// 409, topic rule: any other change rule (the message says which).
    ChangeRejected,
    /// 409, topic rule: the key boxes do not match the members who need them.
    WrongRecipients,
    /// 409, topic rule: a message or change for another epoch.
    WrongEpoch,
    /// 409: a create naming another key than the hosting server's (`protocol.md` §7.2), or a
    /// mirrored log whose create names another key than the one its checkpoints are under.
    WrongHostKey,
    /// 409, topic rule: the sender is not a member.
    NotAMember,
    /// 409, topic rule: the sender's role may not post.
    NotAllowedToPost,
    /// 409, topic rule: the message is already in the log.
    Replayed,
    /// 409, topic rule: the message claims a log size ahead of its position.
    SeenAhead,
    /// 403: the user holds as many of something as allowed (a quota); retrying cannot help.
    QuotaExceeded,
    /// 408: the request's head or body did not arrive in time.
    Timeout,
    /// 413: body over the size limit.
    TooLarge,
    /// 415: body is not CBOR where CBOR is required.
    UnsupportedMediaType,
    /// 426: `/v1/stream` without a valid WebSocket upgrade.
    UpgradeRequired,
    /// 429: too many requests (`Retry-After` says when one more passes).
    RateLimited,
    /// 431: too many header fields, or a request head too large.
    HeadersTooLarge,
    /// 500: server fault (details are logged, not sent).
    Internal,
    /// 502: another server's answer, queried through federation, does not decode or verify.
    BadGateway,
    /// 503: shutting down, storage unavailable, or a peer that could not be reached; try again.
    Unavailable,
    /// 503: the user's directory entry is not in the served (witnessed) checkpoint yet
    /// (`directory.md` §4); `Retry-After` says when the next witness round is.
    DirectoryPending,
    /// 409: the client holds a larger directory checkpoint than the one served
    /// (`directory.md` §4).
    DirectoryRollback,
    /// 502: the user's homeserver's directory contradicted this server's view of it; the
    /// evidence is kept (`directory.md` §4, §5).
    DirectoryForked,
}

/// A code's text that is none of [`ErrorCode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl ErrorCode {
    /// All codes (for the spec test that every code is documented).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::Malformed,
        ErrorCode::BadSignature,
        ErrorCode::Invalid,
        ErrorCode::WrongDestination,
        ErrorCode::FromTheFuture,
        ErrorCode::BadCheckpoint,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::PinInvalid,
        ErrorCode::UserDisabled,
        ErrorCode::WrongOrigin,
        ErrorCode::NotHosting,
        ErrorCode::NotParticipant,
        ErrorCode::NotFound,
        ErrorCode::SplitView,
        ErrorCode::UserExists,
        ErrorCode::DeviceExists,
        ErrorCode::DeviceRevoked,
        ErrorCode::Exhausted,
        ErrorCode::NotAdmin,
        ErrorCode::StaleChange,
        ErrorCode::ChangeRejected,
        ErrorCode::WrongRecipients,
        ErrorCode::WrongEpoch,
        ErrorCode::WrongHostKey,
        ErrorCode::NotAMember,
        ErrorCode::NotAllowedToPost,
        ErrorCode::Replayed,
        ErrorCode::SeenAhead,
        ErrorCode::QuotaExceeded,
        ErrorCode::Timeout,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UpgradeRequired,
        ErrorCode::RateLimited,
        ErrorCode::HeadersTooLarge,
        ErrorCode::Internal,
        ErrorCode::BadGateway,
        ErrorCode::Unavailable,
        ErrorCode::DirectoryPending,
        ErrorCode::DirectoryRollback,
        ErrorCode::DirectoryForked,
    ];

    /// The code's text, as it travels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::Invalid => "invalid",
            ErrorCode::WrongDestination => "wrong_destination",
            ErrorCode::FromTheFuture => "from_the_future",
            ErrorCode::BadCheckpoint => "bad_checkpoint",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::PinInvalid => "pin_invalid",
            ErrorCode::UserDisabled => "user_disabled",
            ErrorCode::WrongOrigin => "wrong_origin",
            ErrorCode::NotHosting => "not_hosting",
            ErrorCode::NotParticipant => "not_participant",
            ErrorCode::NotFound => "not_found",
            ErrorCode::SplitView => "split_view",
            ErrorCode::UserExists => "user_exists",
            ErrorCode::DeviceExists => "device_exists",
            ErrorCode::DeviceRevoked => "device_revoked",
            ErrorCode::Exhausted => "exhausted",
            ErrorCode::NotAdmin => "not_admin",
            ErrorCode::StaleChange => "stale_change",
            ErrorCode::ChangeRejected => "change_rejected",
            ErrorCode::WrongRecipients => "wrong_recipients",
            ErrorCode::WrongEpoch => "wrong_epoch",
            ErrorCode::WrongHostKey => "wrong_host_key",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::NotAllowedToPost => "not_allowed_to_post",
            ErrorCode::Replayed => "replayed",
            ErrorCode::SeenAhead => "seen_ahead",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DirectoryPending => "directory_pending",
            ErrorCode::DirectoryRollback => "directory_rollback",
            ErrorCode::DirectoryForked => "directory_forked",
        }
    }

    /// The HTTP status that goes with the code (`client-api.md` §1.1).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Malformed
            | ErrorCode::BadSignature
            | ErrorCode::Invalid
            | ErrorCode::WrongDestination
            | ErrorCode::FromTheFuture
            | ErrorCode::BadCheckpoint => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden
            | ErrorCode::PinInvalid
            | ErrorCode::UserDisabled
            | ErrorCode::WrongOrigin
            | ErrorCode::NotHosting
            | ErrorCode::NotParticipant
            | ErrorCode::QuotaExceeded => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::SplitView
            | ErrorCode::UserExists
            | ErrorCode::DeviceExists
            | ErrorCode::DeviceRevoked
            | ErrorCode::Exhausted
            | ErrorCode::NotAdmin
            | ErrorCode::StaleChange
            | ErrorCode::ChangeRejected
            | ErrorCode::WrongRecipients
            | ErrorCode::WrongEpoch
            | ErrorCode::WrongHostKey
            | ErrorCode::NotAMember
            | ErrorCode::NotAllowedToPost
            | ErrorCode::Replayed
            | ErrorCode::SeenAhead
            | ErrorCode::DirectoryRollback => 409,
            ErrorCode::Timeout => 408,
            ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::UpgradeRequired => 426,
            ErrorCode::RateLimited => 429,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::Internal => 500,
            ErrorCode::BadGateway | ErrorCode::DirectoryForked => 502,
            ErrorCode::Unavailable | ErrorCode::DirectoryPending => 503,
        }
    }

    /// Parses a code's text; `None` for a code this version does not know.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, UnknownErrorCode> {
        ErrorCode::parse(s).ok_or_else(|| UnknownErrorCode(s.chars().take(64).collect()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_and_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            assert!(seen.insert(code.as_str()), "{code} listed twice");
            assert!((400..600).contains(&code.status()), "{code}");
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
        assert!("no_such_code".parse::<ErrorCode>().is_err());
    }
}
