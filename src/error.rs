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
