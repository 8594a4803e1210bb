//! How the directory's refusals and failures are answered (`directory.md` §4, §5.1).

use super::ApiError;
use crate::directory::DirectoryServeError;
use rendezvous_protocol::api::ErrorCode;

impl From<DirectoryServeError> for ApiError {
    fn from(e: DirectoryServeError) -> Self {
        use DirectoryServeError as E;
        let code = match &e {
            E::Store(s) => return s.clone().into(),
            E::Internal(detail) => return ApiError::internal("directory", detail),
            E::Pending { retry_after, .. } => {
                let mut error = ApiError::said(ErrorCode::DirectoryPending, &e);
                error.retry_after = Some(*retry_after);
                return error;
            }
            E::Rollback { .. } => ErrorCode::DirectoryRollback,
            E::NoSuchUser(_) | E::BeyondLog { .. } => ErrorCode::NotFound,
            E::OutOfRange { .. } => ErrorCode::Invalid,
            E::BadCheckpoint(_) => ErrorCode::BadCheckpoint,
            E::BadSignature(_) => ErrorCode::BadSignature,
        };
        ApiError::said(code, e)
    }
}

/// A remote lookup or a witnessing that failed (`directory.md` §4): `502 bad_gateway` when
/// the answer does not verify (the message says which check), `502 directory_forked` when the
/// server's directory contradicted this server's view, else as any federation query
/// (`federation-api.md` §5).
impl From<crate::federation::directory::WitnessError> for ApiError {
    fn from(e: crate::federation::directory::WitnessError) -> Self {
        use crate::federation::directory::WitnessError as E;
        match e {
            E::Query(q) => q.into(),
            E::Keys(k) => k.into(),
            E::Store(s) => s.into(),
            E::Internal(detail) => ApiError::internal("directory witness", detail),
            E::Forked { .. } => ApiError::said(ErrorCode::DirectoryForked, e),
            E::Unverified { .. } | E::Stale { .. } => ApiError::said(ErrorCode::BadGateway, e),
        }
    }
}

/// An entry this server would append that breaks a rule of `directory.md` §2.1 (a
/// registration too large for an entry, say): `400 invalid`, nothing written.
impl From<rendezvous_protocol::directory::DirectoryError> for ApiError {
    fn from(e: rendezvous_protocol::directory::DirectoryError) -> Self {
        ApiError::said(ErrorCode::Invalid, e)
    }
}
