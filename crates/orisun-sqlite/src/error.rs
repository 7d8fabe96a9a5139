//! Translation of SQLite errors into [`StoreError`], the only place where driver errors are seen.

use orisun_store::StoreError;
use rusqlite::ErrorCode;

/// Classifies a SQLite error, logs it once, and returns the storage error for the caller.
///
/// Busy, locked, I/O, full-disk and open failures are [`StoreError::Unavailable`] (a retry may
/// succeed); everything else is a broken invariant, [`StoreError::Internal`].
pub(crate) fn db_error(
    boundary: &str,
    operation: &'static str,
    err: rusqlite::Error,
) -> StoreError {
    let code = err.sqlite_error_code();
    let transient = matches!(
        code,
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
        )
    );
    if transient {
        tracing::warn!(boundary, operation, error = %err, "sqlite storage unavailable");
        StoreError::unavailable(format!("{operation} on boundary {boundary:?}: {err}"))
    } else {
        tracing::error!(boundary, operation, error = %err, "sqlite storage error");
        StoreError::internal(format!("{operation} on boundary {boundary:?}: {err}"))
    }
}

/// Returns an equivalent error for another caller: a failed group commit fails every request of
/// the group with the same error, and [`StoreError`] is not `Clone`.
pub(crate) fn replicate(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable { reason } => StoreError::unavailable(reason),
        other => StoreError::internal(other),
    }
}
