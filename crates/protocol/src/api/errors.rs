//! Machine-readable error codes of the client API (`client-api.md` §1.1).

use serde::{Deserialize, Serialize};

/// The JSON error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = ($status:literal, $code:literal),)*) => {
        /// Every error code the client API returns, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// The code's text.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status that goes with it.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Parses a code's text.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }

            /// All codes (for the spec test that every code is documented).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];
        }
    };
}

codes! {
    /// Body or parameter does not decode, or is not canonical.
    Malformed = (400, "malformed"),
    /// A signature in the body does not verify.
    BadSignature = (400, "bad_signature"),
    /// A field is out of range or inconsistent.
    Invalid = (400, "invalid"),
    /// Missing, unknown or expired token.
    Unauthorized = (401, "unauthorized"),
    /// The caller may not do this.
    Forbidden = (403, "forbidden"),
    /// Registration pin unknown, used or expired.
    PinInvalid = (403, "pin_invalid"),
    /// The account is disabled.
    UserDisabled = (403, "user_disabled"),
    /// Federation: an event, or the user it names, is not of the server that sent it.
    WrongOrigin = (403, "wrong_origin"),
    /// Federation: the origin does not host the event's topic.
    NotHosting = (403, "not_hosting"),
    /// Federation: the server has no member in the topic.
    NotParticipant = (403, "not_participant"),
    /// No such resource.
    NotFound = (404, "not_found"),
    /// Federation: a checkpoint not signed by the hosting server or not matching the entries.
    BadCheckpoint = (400, "bad_checkpoint"),
    /// The hosting server signed contradictory logs; the mirror stopped.
    SplitView = (409, "split_view"),
    /// User id taken.
    UserExists = (409, "user_exists"),
    /// Device key already registered.
    DeviceExists = (409, "device_exists"),
    /// Device key revoked for good.
    DeviceRevoked = (409, "device_revoked"),
    /// Nothing left to claim.
    Exhausted = (409, "exhausted"),
    /// Topic rule: only admins change a topic.
    NotAdmin = (409, "not_admin"),
    /// Topic rule: the change was built on another state.
    StaleChange = (409, "stale_change"),
    /// Topic rule: any other change rule (message says which).
    ChangeRejected = (409, "change_rejected"),
    /// Topic rule: the key boxes do not match the members who need them.
    WrongRecipients = (409, "wrong_recipients"),
    /// Topic rule: message for another epoch.
    WrongEpoch = (409, "wrong_epoch"),
    /// Topic rule: sender is not a member.
    NotAMember = (409, "not_a_member"),
    /// Topic rule: the sender's role may not post.
    NotAllowedToPost = (409, "not_allowed_to_post"),
    /// Topic rule: the message is already in the log.
    Replayed = (409, "replayed"),
    /// Topic rule: the message claims a log size ahead of its position.
    SeenAhead = (409, "seen_ahead"),
    /// Body over the size limit.
    TooLarge = (413, "too_large"),
    /// Body is not CBOR where CBOR is required.
    UnsupportedMediaType = (415, "unsupported_media_type"),
    /// Too many requests.
    RateLimited = (429, "rate_limited"),
    /// Server fault.
    Internal = (500, "internal"),
    /// Another server's answer, queried through federation, does not decode or verify.
    BadGateway = (502, "bad_gateway"),
    /// Shutting down or storage unavailable.
    Unavailable = (503, "unavailable"),
}
