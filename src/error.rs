//! The one mapping from every error the server meets to an HTTP status, a machine-readable code
//! and a message (`client-api.md` §1.1). Storage and I/O details are logged, never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::store::StoreError;
use rendezvous_protocol::api::{ApiErrorBody, ErrorCode};
use rendezvous_protocol::message::MessageError;
use rendezvous_protocol::topic::{ChangeError, EntryError};
use rendezvous_protocol::wire::WireError;
use rendezvous_protocol::wire::signed::SignedError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Machine-readable code (it fixes the status).
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// 500, with the details logged and not sent.
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "{context}");
        ApiError::new(ErrorCode::Internal, "internal server error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ApiErrorBody {
            code: self.code.as_str().to_owned(),
            message: self.message.clone(),
        })
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::TooLarge { .. } => ApiError::new(ErrorCode::TooLarge, e.to_string()),
            WireError::InvalidField { .. } => ApiError::new(ErrorCode::Invalid, e.to_string()),
            _ => ApiError::new(ErrorCode::Malformed, e.to_string()),
        }
    }
}

impl From<SignedError> for ApiError {
    fn from(e: SignedError) -> Self {
        match e {
            SignedError::BadSignature => ApiError::new(ErrorCode::BadSignature, "bad signature"),
            SignedError::Wire(w) => w.into(),
        }
    }
}

impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        let code = match &e {
            MessageError::Malformed(w) => return w.clone().into(),
            MessageError::TooLarge { .. } => ErrorCode::TooLarge,
            MessageError::BadSignature => ErrorCode::BadSignature,
            MessageError::BadTag | MessageError::UnknownEpoch(_) | MessageError::NotInLog => {
                ErrorCode::Invalid
            }
            MessageError::WrongEpoch { .. } => ErrorCode::WrongEpoch,
            MessageError::NotAMember(_) => ErrorCode::NotAMember,
            MessageError::NotAllowedToPost { .. } => ErrorCode::NotAllowedToPost,
            MessageError::Replayed => ErrorCode::Replayed,
            MessageError::SeenAhead { .. } => ErrorCode::SeenAhead,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        let code = match &e {
            ChangeError::Malformed(w) => return w.clone().into(),
            ChangeError::BadSignature => ErrorCode::BadSignature,
            ChangeError::NotAdmin { .. } | ChangeError::UnknownAuthor(_) => ErrorCode::NotAdmin,
            ChangeError::StaleChange => ErrorCode::StaleChange,
            ChangeError::WrongRecipients { .. } | ChangeError::BoxWrongKey(_) => {
                ErrorCode::WrongRecipients
            }
            ChangeError::WrongEpoch { .. } => ErrorCode::WrongEpoch,
            ChangeError::NotAMember(_) => ErrorCode::NotAMember,
            ChangeError::BadTopicKeyCert { .. } => ErrorCode::BadSignature,
            ChangeError::WrongTopic { .. }
            | ChangeError::InvalidCreate(_)
            | ChangeError::CreateNotFirst
            | ChangeError::AlreadyMember(_)
            | ChangeError::TopicKeyReused
            | ChangeError::SelfRemoval
            | ChangeError::LastAdmin
            | ChangeError::NoOp
            | ChangeError::TooManyMembers { .. }
            | ChangeError::KeyCheck(_)
            | ChangeError::HistoryBox(_) => ErrorCode::ChangeRejected,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<EntryError> for ApiError {
    fn from(e: EntryError) -> Self {
        match e {
            EntryError::Malformed { error, .. } => error.into(),
            EntryError::Change { error, .. } => error.into(),
            EntryError::Message { error, .. } => error.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PinInvalid => ApiError::new(
                ErrorCode::PinInvalid,
                "registration pin unknown, used or expired",
            ),
            StoreError::UserExists => ApiError::new(ErrorCode::UserExists, "the user id is taken"),
            StoreError::DeviceExists => {
                ApiError::new(ErrorCode::DeviceExists, "device key already registered")
            }
            StoreError::DeviceRevoked => {
                ApiError::new(ErrorCode::DeviceRevoked, "device key was revoked")
            }
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            StoreError::TooMany { .. } => ApiError::new(ErrorCode::Invalid, e.to_string()),
            StoreError::Exists => ApiError::new(ErrorCode::Forbidden, "already exists"),
            // Another append won the race for this position (e.g. two creates of one topic id).
            StoreError::Conflict { .. } => ApiError::new(ErrorCode::StaleChange, e.to_string()),
            StoreError::Replayed { .. } => ApiError::new(
                ErrorCode::Replayed,
                "replayed message: tag already in the log",
            ),
            StoreError::Backend(_) | StoreError::Corrupt { .. } => ApiError::internal("storage", e),
        }
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::federation::FederationOff> for ApiError {
    /// `invalid` wherever federation is needed and off (`client-api.md` §1.1).
    fn from(e: crate::federation::FederationOff) -> Self {
        ApiError::new(ErrorCode::Invalid, e.to_string())
    }
}

impl From<crate::topics::TopicError> for ApiError {
    /// How the topic service's refusals and failures are answered (`client-api.md` §1.1,
    /// `federation-api.md` §6).
    fn from(e: crate::topics::TopicError) -> Self {
        use crate::topics::TopicError as E;
        let code = match e {
            E::Wire(w) => return w.into(),
            E::Signed(s) => return s.into(),
            E::Message(m) => return m.into(),
            E::Change(c) => return c.into(),
            E::Entry(x) => return x.into(),
            E::Store(s) => return s.into(),
            E::Internal { context, detail } => return ApiError::internal(context, detail),
            E::Relay(r) => return ApiError::new(r.code, r.message),
            E::HostRefused { status, code } => {
                let message = format!("the hosting server refused the post: {code}");
                return match ErrorCode::parse(&code) {
                    Some(c) => ApiError::new(c, message),
                    None => ApiError::new(
                        ErrorCode::Invalid,
                        format!("the hosting server refused the post: {status} {code}"),
                    ),
                };
            }
            E::NoTopic { .. } | E::NotHostedHere { .. } | E::NoUser { .. } => ErrorCode::NotFound,
            E::NoHostCheckpoint | E::BeyondLog { .. } => ErrorCode::NotFound,
            E::HostedElsewhere { .. }
            | E::HostedHere { .. }
            | E::NotTheHost { .. }
            | E::SubmitElsewhere { .. } => ErrorCode::NotHosting,
            E::NotTheCaller { .. } | E::NotAMember => ErrorCode::Forbidden,
            E::NoMember { .. } | E::NoLocalMember { .. } | E::NotTakingPart { .. } => {
                ErrorCode::NotParticipant
            }
            E::CreateElsewhere { .. }
            | E::WrongIdentity { .. }
            | E::CreationForAnotherTopic
            | E::LogWithoutCreation
            | E::BeyondDurable { .. }
            | E::FederationOff { .. } => ErrorCode::Invalid,
            E::IdentityUnfetched { .. } | E::MirrorRace | E::EndlessBackfill => {
                ErrorCode::Unavailable
            }
            E::MirrorStopped | E::SplitView { .. } => ErrorCode::SplitView,
            E::BadCheckpoint { .. } | E::BackfillMismatch { .. } => ErrorCode::BadCheckpoint,
            E::NoCosignature { .. } => ErrorCode::BadSignature,
            E::NoEntries | E::UnknownEntryKind { .. } => ErrorCode::Malformed,
            E::WrongOrigin { .. } => ErrorCode::WrongOrigin,
        };
        ApiError::new(code, e.to_string())
    }
}
