//! Translation of driver and pool errors into [`StoreError`], at the edge of the crate.

use orisun_store::StoreError;
use tokio_postgres::error::SqlState;

/// Translates a driver error and logs it once, with what the store was doing.
pub fn db(context: &str, error: tokio_postgres::Error) -> StoreError {
    let translated = classify(&error);
    match &translated {
        StoreError::Unavailable { .. } => {
            tracing::warn!(context, error = %error, code = ?error.code().map(SqlState::code), "postgres unavailable");
        }
        _ => {
            tracing::error!(context, error = %error, code = ?error.code().map(SqlState::code), "postgres error");
        }
    }
    translated
}

/// Translates a pool error (no connection could be had) and logs it once.
pub fn pool(context: &str, error: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match error {
        PoolError::Backend(e) => db(context, e),
        other => {
            tracing::warn!(context, error = %other, "no postgres connection");
            StoreError::unavailable(format!("{context}: {other}"))
        }
    }
}

/// The error's message followed by its causes: the driver's own message is often only the
/// kind ("error performing TLS handshake"), and the cause says what went wrong ("invalid peer
/// certificate: ... not valid for name ...").
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

/// Chooses the variant: transient conditions (lost connection, shutdown, serialization
/// failures, lack of resources) are `Unavailable`, so a caller may retry; a stored event id
/// (unique violation on the event id) is `DuplicateEvents`; data the database refuses (data
/// exceptions, values over its size limits) is `Invalid`; anything else is a bug or a broken
/// invariant and is `Internal`.
fn classify(error: &tokio_postgres::Error) -> StoreError {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection broke, or the server could not be reached.
        return StoreError::unavailable(with_causes(error));
    };
    if let Some(db) = error.as_db_error() {
        if *code == SqlState::UNIQUE_VIOLATION
            && db
                .constraint()
                .is_some_and(|c| c.ends_with("_orisun_es_event_id_key"))
        {
            // Detail: `Key (event_id)=(<uuid>) already exists.`
            let id = db
                .detail()
                .and_then(|d| d.split_once("=(")?.1.split_once(')'))
                .and_then(|(id, _)| uuid::Uuid::parse_str(id).ok());
            return StoreError::DuplicateEvents {
                event_ids: id.into_iter().collect(),
            };
        }
        if code.code().starts_with("22") || *code == SqlState::PROGRAM_LIMIT_EXCEEDED {
            return StoreError::invalid("events", db.message());
        }
    }
    let text = code.code();
    let transient = error.is_closed()
        || text.starts_with("08") // connection exception
        || text.starts_with("53") // insufficient resources
        || text.starts_with("57") // operator intervention: shutdown, cancel
        || text.starts_with("58") // system error (I/O)
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
    let reason = match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), text),
        None => with_causes(error),
    };
    if transient {
        StoreError::unavailable(reason)
    } else {
        StoreError::internal(reason)
    }
}

/// Rebuilds an error for each caller of a failed group commit (`StoreError` is not `Clone`).
pub(crate) fn replicate(error: &StoreError) -> StoreError {
    match error {
        StoreError::Invalid(e) => StoreError::Invalid(e.clone()),
        StoreError::UnknownBoundary { name } => StoreError::UnknownBoundary { name: name.clone() },
        StoreError::ConditionFailed { expected, actual } => StoreError::ConditionFailed {
            expected: *expected,
            actual: *actual,
        },
        StoreError::DuplicateEvents { event_ids } => StoreError::DuplicateEvents {
            event_ids: event_ids.clone(),
        },
        StoreError::Unavailable { reason } => StoreError::Unavailable {
            reason: reason.clone(),
        },
        StoreError::Internal { reason } => StoreError::Internal {
            reason: reason.clone(),
        },
        // Variants this backend never produces while appending.
        #[allow(unreachable_patterns)]
        other => StoreError::internal(other),
    }
}
