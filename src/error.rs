//! The one mapping from every error the server meets to an HTTP status, a machine-readable code
//! and a message (`client-api.md` §1.1, `federation-api.md` §4, §6).
//!
//! Each layer of the server has its own typed error (the handlers' refusals, the federation
//! listener's, the federation client's, the store's, the protocol's checks); this module holds
//! one `From<LayerError> for ApiError` per type, and only here is an [`ApiError`] built from a
//! code and a message. The code fixes the status ([`ErrorCode::status`]). Storage and I/O
//! details are logged, never sent: a storage fault answers `503 unavailable` or `500 internal`,
//! never a protocol verdict that a peer or client would act on.

use std::fmt::Display;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::admin::AdminError;
use crate::api::{AccountError, KeysError, RelayError, RequestError};
use crate::claims::ClaimError;
use crate::federation::client::QueryError;
use crate::federation::inbound::TransactionRefusal;
use crate::federation::keys::PeerKeysError;
use crate::federation::outbound::OutboundError;
use crate::federation::peer::PeerError;
use crate::federation::queries::QueryRefusal;
use crate::push::PushUrlError;
use crate::store::StoreError;
use rendezvous_protocol::api::{ApiErrorBody, ErrorCode};
use rendezvous_protocol::devices::DirectoryError;
use rendezvous_protocol::federation::event::EventError;
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
    /// Seconds after which a retry may pass (`Retry-After`): set for `rate_limited` and
    /// `unavailable`.
    pub retry_after: Option<u64>,
}

/// The `Retry-After` of `503 unavailable` (storage faults, unreachable peers).
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl ApiError {
    /// An error with a message. Outside this module, return a layer's typed error instead and
    /// let its `From` impl here decide the code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: match code {
                ErrorCode::Unavailable => Some(UNAVAILABLE_RETRY_SECS),
                _ => None,
            },
        }
    }

    /// 500, with the details logged and not sent.
    pub fn internal(context: &str, detail: impl Display) -> Self {
        tracing::error!(%detail, "{context}");
        ApiError::new(ErrorCode::Internal, "internal server error")
    }

    /// `code` with the error's own text as the message (what was expected and what came).
    fn said(code: ErrorCode, error: impl Display) -> Self {
        ApiError::new(code, error.to_string())
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
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ApiErrorBody {
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
            // The server's own tag log or tags could not be read: never a verdict on the
            // message (`client-api.md` §1.4).
            MessageError::RootUnknown { .. } | MessageError::TagsUnavailable => {
                return ApiError::new(ErrorCode::Unavailable, e.to_string());
            }
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
            ChangeError::StaleChange | ChangeError::StaleRoot { .. } => ErrorCode::StaleChange,
            ChangeError::RootUnknown { .. } => {
                return ApiError::new(ErrorCode::Unavailable, e.to_string());
            }
            ChangeError::WrongRecipients { .. } | ChangeError::BoxWrongKey(_) => {
                ErrorCode::WrongRecipients
            }
            ChangeError::WrongEpoch { .. } => ErrorCode::WrongEpoch,
            ChangeError::WrongHostKey { .. } => ErrorCode::WrongHostKey,
            ChangeError::NotAMember(_) => ErrorCode::NotAMember,
            ChangeError::BadTopicKeyCert { .. } => ErrorCode::BadSignature,
            ChangeError::WrongTopic { .. }
            | ChangeError::InvalidCreate(_)
            | ChangeError::CreateNotFirst
            | ChangeError::AlreadyMember(_)
            | ChangeError::TopicKeyReused
            | ChangeError::SelfRemoval
            | ChangeError::InvalidMove(_)
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
            // The server pushes entries at their own positions; this is a fault of the caller.
            EntryError::Position { .. } => ApiError::new(ErrorCode::StaleChange, e.to_string()),
        }
    }
}

/// Storage faults are logged and answered without their details: `unavailable` when the backend
/// failed (try again), `internal` when a record does not decode. The store's rules (a pin used,
/// a user taken, a lost race for a log position) are client errors.
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
            StoreError::EndorserInactive => ApiError::new(ErrorCode::Forbidden, e.to_string()),
            StoreError::NotFound => ApiError::new(ErrorCode::NotFound, "not found"),
            StoreError::TooMany { .. } | StoreError::Quota { .. } => {
                ApiError::new(ErrorCode::QuotaExceeded, e.to_string())
            }
            StoreError::Exists => ApiError::new(ErrorCode::Forbidden, "already exists"),
            // Another append won the race for this position (e.g. two creates of one topic id).
            StoreError::Conflict { .. } => ApiError::new(ErrorCode::StaleChange, e.to_string()),
            StoreError::RotationStale => ApiError::new(ErrorCode::Invalid, e.to_string()),
            StoreError::Replayed { .. } => ApiError::new(
                ErrorCode::Replayed,
                "replayed message: tag already in the log",
            ),
            StoreError::Backend(_) => {
                tracing::error!(error = %e, "storage");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "storage unavailable; try again later",
                )
            }
            StoreError::Corrupt { .. } => ApiError::internal("storage", e),
        }
    }
}

/// A rate class refused the request: `429 rate_limited`, `Retry-After` the wait.
impl From<crate::limits::Limited> for ApiError {
    fn from(e: crate::limits::Limited) -> Self {
        let mut error = ApiError::said(ErrorCode::RateLimited, &e);
        error.retry_after = Some(e.retry_after_secs);
        error
    }
}

impl From<crate::api::gate::GateError> for ApiError {
    fn from(e: crate::api::gate::GateError) -> Self {
        match e {
            crate::api::gate::GateError::TooLarge { .. } => ApiError::said(ErrorCode::TooLarge, e),
            crate::api::gate::GateError::Timeout { .. } => ApiError::said(ErrorCode::Timeout, e),
            crate::api::gate::GateError::HeadTooLarge { .. } => {
                ApiError::said(ErrorCode::HeadersTooLarge, e)
            }
        }
    }
}

/// The body-memory budget refused a body before it was read (`client-api.md` §1.2):
/// `503 unavailable` or `429 rate_limited`, both with `Retry-After: 1`.
impl From<crate::limits::BudgetRefusal> for ApiError {
    fn from(e: crate::limits::BudgetRefusal) -> Self {
        let code = match e {
            crate::limits::BudgetRefusal::Full { .. } => ErrorCode::Unavailable,
            crate::limits::BudgetRefusal::User { .. } => ErrorCode::RateLimited,
        };
        let mut error = ApiError::said(code, e);
        error.retry_after = Some(1);
        error
    }
}

impl From<crate::api::StreamRefused> for ApiError {
    fn from(e: crate::api::StreamRefused) -> Self {
        match e {
            crate::api::StreamRefused::Upgrade(_) => ApiError::said(ErrorCode::UpgradeRequired, e),
            crate::api::StreamRefused::Quota(_) => ApiError::said(ErrorCode::QuotaExceeded, e),
        }
    }
}

// ---- client API handlers ---------------------------------------------------------------------

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NotCbor { .. } => ApiError::said(ErrorCode::UnsupportedMediaType, e),
            RequestError::Body(w) => w.into(),
            RequestError::BadValue { .. } => ApiError::said(ErrorCode::Malformed, e),
            RequestError::NoSuchEndpoint => ApiError::said(ErrorCode::NotFound, e),
            RequestError::OutOfRange { .. } => ApiError::said(ErrorCode::Invalid, e),
        }
    }
}

impl From<crate::state::AuthError> for ApiError {
    fn from(e: crate::state::AuthError) -> Self {
        match e {
            crate::state::AuthError::Disabled => ApiError::said(ErrorCode::UserDisabled, e),
            _ => ApiError::said(ErrorCode::Unauthorized, e),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let code = match &e {
            AccountError::NotLocalUser { .. } | AccountError::CertificateForAnotherUser { .. } => {
                ErrorCode::Invalid
            }
            AccountError::NoSuchUser(_) | AccountError::NoSuchDevice => ErrorCode::NotFound,
            AccountError::NoActiveDevice
            | AccountError::UnknownChallenge
            | AccountError::ChallengeMismatch
            | AccountError::DeviceRemoved => ErrorCode::Unauthorized,
            AccountError::BadLoginSignature | AccountError::BadRotation(_) => {
                ErrorCode::BadSignature
            }
            AccountError::EndorsementRequired => ErrorCode::EndorsementRequired,
            AccountError::RevocationForAnotherUser
            | AccountError::RotationForAnotherUser
            | AccountError::RotationFromAnotherKey { .. } => ErrorCode::Forbidden,
            AccountError::RegistrationMismatch
            | AccountError::DeviceSetMismatch(_)
            | AccountError::DeliverySetMismatch(_) => ErrorCode::Invalid,
            AccountError::StoredDeviceKey(_) => return ApiError::internal("login", e),
        };
        ApiError::said(code, e)
    }
}

/// A device certificate or endorsement the user's device set refuses (`devices.md` §2).
impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        let code = match &e {
            DirectoryError::Malformed(w) => return w.clone().into(),
            DirectoryError::BadSignature { .. }
            | DirectoryError::BadEndorsementSignature { .. } => ErrorCode::BadSignature,
            DirectoryError::WrongUser { .. } | DirectoryError::EndorsementMismatch { .. } => {
                ErrorCode::Invalid
            }
            DirectoryError::Revoked { .. } => ErrorCode::DeviceRevoked,
            DirectoryError::UnknownDevice { .. } => ErrorCode::NotFound,
            DirectoryError::Duplicate { .. } => ErrorCode::DeviceExists,
            DirectoryError::TooManyDevices { limit } => {
                return ApiError::new(
                    ErrorCode::QuotaExceeded,
                    format!("quota devices_per_user (protocol limit {limit}) reached"),
                );
            }
            DirectoryError::UnknownEndorser { .. }
            | DirectoryError::EndorserRevoked { .. }
            | DirectoryError::SelfEndorsed { .. } => ErrorCode::Forbidden,
        };
        ApiError::said(code, &e)
    }
}

impl From<KeysError> for ApiError {
    fn from(e: KeysError) -> Self {
        match e {
            KeysError::Count { .. }
            | KeysError::PreKeyForAnotherUser { .. }
            | KeysError::TopicKeyUpload(_)
            | KeysError::UnknownPreKey(_)
            | KeysError::DeliveryNotToOwnDevice
            | KeysError::KnownTopicKey(_) => ApiError::said(ErrorCode::Invalid, e),
            KeysError::CallerDeviceKey(_) => ApiError::internal("keys", e),
        }
    }
}

impl From<RelayError> for ApiError {
    fn from(e: RelayError) -> Self {
        let code = match &e {
            RelayError::BadLinkId(_) | RelayError::Undecodable(_) => ErrorCode::Malformed,
            RelayError::NoOpenLink | RelayError::NoRequestYet | RelayError::NoResponseYet => {
                ErrorCode::NotFound
            }
            RelayError::OpenedByAnotherDevice => ErrorCode::Forbidden,
            RelayError::ForAnotherLink { .. } => ErrorCode::Invalid,
        };
        ApiError::said(code, e)
    }
}

impl From<PushUrlError> for ApiError {
    fn from(e: PushUrlError) -> Self {
        match &e {
            // DNS did not answer: the URL may be fine; the detail is for our log.
            PushUrlError::Target(crate::net::ResolveError::Failed { .. }) => {
                tracing::info!(error = %e, "push URL lookup");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the push URL's host cannot be looked up now; try again later",
                )
            }
            _ => ApiError::said(ErrorCode::Invalid, e),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let code = match &e {
            AdminError::Unauthorized => ErrorCode::Unauthorized,
            AdminError::NoSuchUser(_) => ErrorCode::NotFound,
        };
        ApiError::said(code, e)
    }
}

// ---- federation ------------------------------------------------------------------------------

/// `federation-api.md` §1: a certificate not valid for the claimed name is `unauthorized`, a
/// peer the allow and deny lists shut out is `forbidden`.
impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> Self {
        let code = match &e {
            PeerError::NoCertificate | PeerError::NotCertifiedFor { .. } => ErrorCode::Unauthorized,
            PeerError::Denied(_) => ErrorCode::Forbidden,
        };
        ApiError::said(code, e)
    }
}

/// Whole-transaction refusals (`federation-api.md` §4): `invalid`, nothing applied.
impl From<TransactionRefusal> for ApiError {
    fn from(e: TransactionRefusal) -> Self {
        match e {
            TransactionRefusal::PathMismatch { .. }
            | TransactionRefusal::WrongDestination { .. } => ApiError::said(ErrorCode::Invalid, e),
            TransactionRefusal::OriginMismatch { .. } => ApiError::said(ErrorCode::Unauthorized, e),
        }
    }
}

/// A refused event's result (`federation-api.md` §3.3, §4).
impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let code = match &e {
            EventError::Malformed(_) => ErrorCode::Malformed,
            EventError::WrongOrigin { .. } => ErrorCode::WrongOrigin,
            EventError::WrongDestination { .. } => ErrorCode::WrongDestination,
            EventError::BadSignature => ErrorCode::BadSignature,
            EventError::FromTheFuture { .. } => ErrorCode::FromTheFuture,
        };
        ApiError::said(code, e)
    }
}

/// Queries answered to other servers (`federation-api.md` §5).
impl From<ClaimError> for ApiError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::Duplicate(_) | ClaimError::TooManyServers { .. } => {
                ApiError::said(ErrorCode::Invalid, e)
            }
        }
    }
}

impl From<QueryRefusal> for ApiError {
    fn from(e: QueryRefusal) -> Self {
        match e {
            QueryRefusal::MissingOrigin => ApiError::said(ErrorCode::Unauthorized, e),
            QueryRefusal::BadOrigin(r) => r.into(),
            QueryRefusal::Peer(p) => p.into(),
            QueryRefusal::ClaimCount { .. } | QueryRefusal::ForeignUser { .. } => {
                ApiError::said(ErrorCode::Invalid, e)
            }
            QueryRefusal::NoSuchUser(_) => ApiError::said(ErrorCode::NotFound, e),
        }
    }
}

/// How a failed query is told to a device (`federation-api.md` §5): `unavailable` when the
/// peer cannot be reached, the peer's own code when it refused (`not_found` stays
/// `not_found`; a code we do not know becomes `invalid`), `bad_gateway` when it lied.
impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let code = match &e {
            // The connection's details (addresses, resolver and TLS errors) are for our log.
            QueryError::Unreachable { server, .. } => {
                tracing::warn!(error = %e, "federation query");
                return ApiError::new(
                    ErrorCode::Unavailable,
                    format!("{server} cannot be reached now; try again later"),
                );
            }
            QueryError::NotContacted { .. } => ErrorCode::Forbidden,
            QueryError::Refused { status: 404, .. } => ErrorCode::NotFound,
            QueryError::Refused { code, .. } => match ErrorCode::parse(code) {
                // The peer did not accept *this server*; a device seeing `unauthorized` would
                // take its own token for bad.
                Some(ErrorCode::Unauthorized) => ErrorCode::Forbidden,
                // directory.md §4: the user's binding is not witnessed yet; try again.
                Some(ErrorCode::DirectoryPending) => {
                    let mut error = ApiError::said(ErrorCode::DirectoryPending, &e);
                    error.retry_after = Some(1);
                    return error;
                }
                // Our own request was fine for our client; a 5xx-like code in a 4xx is not one
                // of the peer's documented answers.
                Some(c) if (400..500).contains(&c.status()) => c,
                _ => ErrorCode::Invalid,
            },
            QueryError::Invalid { .. } => ErrorCode::BadGateway,
        };
        ApiError::said(code, e)
    }
}

/// A peer's keys that could not be had (`federation-api.md` §2, §4): try again later. How the
/// peer failed is for our log.
impl From<PeerKeysError> for ApiError {
    fn from(e: PeerKeysError) -> Self {
        match &e {
            PeerKeysError::Forbidden { .. } => ApiError::said(ErrorCode::Forbidden, e),
            PeerKeysError::Unreachable { server, .. } | PeerKeysError::Invalid { server, .. } => {
                tracing::warn!(error = %e, "a federation peer's keys");
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!("the keys of {server} cannot be had now; try again later"),
                )
            }
        }
    }
}

impl From<OutboundError> for ApiError {
    fn from(e: OutboundError) -> Self {
        match e {
            OutboundError::Store(s) => s.into(),
            OutboundError::TooLarge { .. } => ApiError::said(ErrorCode::TooLarge, e),
            OutboundError::QueueFull { .. } => ApiError::said(ErrorCode::Unavailable, e),
            OutboundError::ToSelf(_) => ApiError::internal("outbound", e),
        }
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::federation::FederationOff> for ApiError {
    /// `invalid` wherever federation is needed and off (`client-api.md` §1.1).
    fn from(e: crate::federation::FederationOff) -> Self {
        ApiError::said(ErrorCode::Invalid, e)
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
            E::TooManyMirrors { .. } => ErrorCode::QuotaExceeded,
        };
        ApiError::new(code, e.to_string())
    }
}

mod directory;
#[cfg(test)]
mod tests;
