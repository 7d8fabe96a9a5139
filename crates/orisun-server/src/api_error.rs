//! The one mapping from the server's errors to what a client is answered: a gRPC status and,
//! for the HTTP side (probes, dashboard), an HTTP status. Each error kind gets its gRPC code
//! here, and each gRPC code its HTTP status ([`http_status`]), so the two protocols never
//! disagree about what an error means. Storage errors keep their mapping in
//! [`orisun_proto::status`], which a client decodes back.

use crate::auth::AuthError;
use crate::users::UserError;
use axum::http::StatusCode;
use orisun_proto::status;
use orisun_store::StoreError;
use tonic::{Code, Status};

/// Every error a request handler of this server answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A storage call failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The call was not authenticated.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A user command did nothing.
    #[error(transparent)]
    User(#[from] UserError),
    /// The caller is authenticated but not allowed to do this.
    #[error("{0}")]
    Denied(String),
}

impl ApiError {
    /// The gRPC status of the error.
    pub fn status(self) -> Status {
        match self {
            ApiError::Store(e) => status::status(e),
            ApiError::User(UserError::Store(e)) => status::status(e),
            ApiError::User(UserError::Invalid(e)) => status::invalid(e),
            ApiError::User(UserError::Auth(e)) | ApiError::Auth(e) => auth_status(e),
            other => Status::new(other.code(), other.to_string()),
        }
    }

    /// The gRPC code of the error.
    pub fn code(&self) -> Code {
        match self {
            ApiError::Store(e) | ApiError::User(UserError::Store(e)) => status::code(e),
            ApiError::Auth(e) | ApiError::User(UserError::Auth(e)) => auth_code(e),
            ApiError::User(e) => match e {
                UserError::Invalid(_) => Code::InvalidArgument,
                UserError::AlreadyExists { .. } => Code::AlreadyExists,
                UserError::NotFound { .. } => Code::NotFound,
                UserError::DeleteSelf => Code::FailedPrecondition,
                UserError::NotYourPassword => Code::PermissionDenied,
                UserError::WrongPassword => Code::Unauthenticated,
                UserError::Contended => Code::Aborted,
                UserError::Hashing(_) => Code::Internal,
                UserError::Auth(_) | UserError::Store(_) => {
                    unreachable!("matched by the arms above")
                }
            },
            ApiError::Denied(_) => Code::PermissionDenied,
        }
    }

    /// The HTTP status of the error, derived from its gRPC code.
    pub fn http_status(&self) -> StatusCode {
        http_status(self.code())
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        e.status()
    }
}

impl From<UserError> for Status {
    fn from(e: UserError) -> Self {
        ApiError::from(e).status()
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        ApiError::from(e).status()
    }
}

/// Each authentication failure is `UNAUTHENTICATED` with Go Orisun's message, except a
/// directory that cannot be read, which is `UNAVAILABLE`.
fn auth_code(e: &AuthError) -> Code {
    match e {
        AuthError::Unavailable(_) => Code::Unavailable,
        _ => Code::Unauthenticated,
    }
}

fn auth_status(e: AuthError) -> Status {
    Status::new(auth_code(&e), e.to_string())
}

/// The HTTP status that answers what gRPC code `code` means (the mapping of gRPC's HTTP
/// guidance: client errors 4xx, outages 503, bugs 500).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orisun_core::{Invalid, Position};

    fn both(e: impl Into<ApiError>) -> (Code, StatusCode, String) {
        let e = e.into();
        let code = e.code();
        let http = e.http_status();
        let status = e.status();
        assert_eq!(status.code(), code, "code() agrees with status()");
        (code, http, status.message().to_owned())
    }

    #[test]
    fn user_errors_map_to_grpc_and_http() {
        let cases: [(UserError, Code, StatusCode, &str); 8] = [
            (
                Invalid::new("username", "must be at least 3 characters").into(),
                Code::InvalidArgument,
                StatusCode::BAD_REQUEST,
                "username: must be at least 3 characters",
            ),
            (
                UserError::AlreadyExists {
                    username: "bob".into(),
                },
                Code::AlreadyExists,
                StatusCode::CONFLICT,
                "user \"bob\" already exists",
            ),
            (
                UserError::NotFound {
                    user_id: "u1".into(),
                },
                Code::NotFound,
                StatusCode::NOT_FOUND,
                "user \"u1\" not found",
            ),
            (
                UserError::DeleteSelf,
                Code::FailedPrecondition,
                StatusCode::PRECONDITION_FAILED,
                "cannot delete your own user",
            ),
            (
                UserError::NotYourPassword,
                Code::PermissionDenied,
                StatusCode::FORBIDDEN,
                "permission denied: you can only change your own password",
            ),
            (
                UserError::WrongPassword,
                Code::Unauthenticated,
                StatusCode::UNAUTHORIZED,
                "current password is incorrect",
            ),
            (
                UserError::Contended,
                Code::Aborted,
                StatusCode::CONFLICT,
                "too many concurrent changes to this user; retry",
            ),
            (
                UserError::Store(StoreError::unavailable("down")),
                Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable: down",
            ),
        ];
        for (error, code, http, message) in cases {
            assert_eq!(both(error), (code, http, message.to_owned()));
        }
    }

    #[test]
    fn auth_errors_keep_go_messages() {
        assert_eq!(
            both(AuthError::Missing),
            (
                Code::Unauthenticated,
                StatusCode::UNAUTHORIZED,
                "missing authorization header".to_owned()
            )
        );
        assert_eq!(both(AuthError::Expired).2, "token expired");
        let (code, http, _) = both(AuthError::Unavailable("db down".into()));
        assert_eq!(
            (code, http),
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[test]
    fn store_errors_use_the_proto_mapping() {
        let conflict = StoreError::ConditionFailed {
            expected: Position::new(1, 0),
            actual: Position::new(3, 2),
        };
        let expected = status::status(StoreError::ConditionFailed {
            expected: Position::new(1, 0),
            actual: Position::new(3, 2),
        });
        let (code, http, message) = both(conflict);
        assert_eq!(
            (code, message.as_str()),
            (expected.code(), expected.message())
        );
        assert_eq!(http, StatusCode::CONFLICT);
        let (code, http, _) = both(StoreError::UnknownBoundary { name: "x".into() });
        assert_eq!(
            (code, http),
            (Code::FailedPrecondition, StatusCode::PRECONDITION_FAILED)
        );
    }
}
