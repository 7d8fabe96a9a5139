//! Credential checks: Basic username/password (argon2id, with a brief cache of successful
//! verifications) and tokens (signature, expiry, and revocation by password epoch), catching up
//! with the admin boundary once before saying no.

use super::authority::Auth;
use super::directory::UserRecord;
use super::password;
use super::token::{self, Claims, TokenError};
use super::Caller;
use crate::users::User;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::time::Instant;

/// How long a successful password verification is remembered for the same password.
pub(super) const VERIFY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Why a call was not authenticated. Each is `UNAUTHENTICATED` with Go Orisun's message, except
/// a directory that cannot be read, which is `UNAVAILABLE` (see [`crate::api_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("missing authorization header")]
    Missing,
    /// An `authorization` header that is not `Basic base64(user:pass)`.
    #[error("invalid authorization header format")]
    BadFormat,
    /// Unknown user, wrong password or a token that is not ours.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A token past its expiry.
    #[error("token expired")]
    Expired,
    /// A token issued before a password change or the user's deletion.
    #[error("token revoked")]
    Revoked,
    /// The user directory could not be read.
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

/// A remembered successful verification of a user's password.
pub(super) struct Verified {
    user_id: String,
    pub(super) epoch: i64,
    digest: [u8; 32],
    pub(super) at: Instant,
}

impl Auth {
    /// Checks Basic credentials. On success returns the caller and a fresh token.
    pub async fn authenticate_basic(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(Caller, String), AuthError> {
        let user = self
            .check_password(username, password)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let token = self.issue_token(&user)?;
        Ok((User::from(&user).caller(), token))
    }

    /// Checks a token. On success returns the caller.
    pub async fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        let key = self
            .directory
            .read()
            .key()
            .cloned()
            .ok_or_else(|| AuthError::Unavailable("no token key loaded".into()))?;
        let claims = token::verify(&key, token, self.clock.now_ms()).map_err(|e| match e {
            TokenError::Invalid => AuthError::InvalidCredentials,
            TokenError::Expired => AuthError::Expired,
        })?;
        match self.token_user(&claims) {
            TokenCheck::Valid(caller) => return Ok(caller),
            TokenCheck::Revoked => return Err(AuthError::Revoked),
            TokenCheck::Unknown => {}
        }
        // The token is newer than what this node has seen (issued by another node after a
        // change this node has not followed yet): catch up once, then decide.
        self.refresh()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        match self.token_user(&claims) {
            TokenCheck::Valid(caller) => Ok(caller),
            TokenCheck::Revoked | TokenCheck::Unknown => Err(AuthError::Revoked),
        }
    }

    fn token_user(&self, claims: &Claims) -> TokenCheck {
        let directory = self.directory.read();
        match directory.user(&claims.user_id) {
            Some(user) if user.epoch == claims.epoch => {
                TokenCheck::Valid(User::from(user).caller())
            }
            Some(user) if user.epoch > claims.epoch => TokenCheck::Revoked,
            Some(_) => TokenCheck::Unknown,
            None if directory.was_deleted(&claims.user_id) => TokenCheck::Revoked,
            None => TokenCheck::Unknown,
        }
    }

    /// Issues a token for `user` valid for the configured time-to-live.
    fn issue_token(&self, user: &UserRecord) -> Result<String, AuthError> {
        let key = self
            .directory
            .read()
            .key()
            .cloned()
            .ok_or_else(|| AuthError::Unavailable("no token key loaded".into()))?;
        let ttl = i64::try_from(self.cfg.token_ttl.as_millis()).unwrap_or(i64::MAX);
        let claims = Claims {
            user_id: user.user_id.clone(),
            epoch: user.epoch,
            expires_ms: self.clock.now_ms().saturating_add(ttl),
        };
        Ok(token::sign(&key, &claims))
    }

    /// Returns the live user when `password` is theirs, `None` when the user is unknown or the
    /// password wrong. Catches up with the admin boundary once before saying no, so a user or
    /// password just created on another node is accepted.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        let mut refreshed = false;
        loop {
            let user = self.directory.read().by_username(username).cloned();
            if let Some(user) = &user {
                if self.password_matches(user, password).await {
                    return Ok(Some(user.clone()));
                }
            }
            if refreshed {
                return Ok(None);
            }
            let before = self.directory.read().cursor();
            self.refresh()
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            if self.directory.read().cursor() == before {
                if user.is_none() {
                    // Spend the same work as for a wrong password, so the answer's timing
                    // does not tell which usernames exist.
                    password::verify_dummy_blocking(password.to_owned()).await;
                }
                return Ok(None);
            }
            refreshed = true;
        }
    }

    async fn password_matches(&self, user: &UserRecord, password: &str) -> bool {
        let digest = self.digest(password);
        if let Some(v) = self.verified.lock().get(&user.username) {
            if v.user_id == user.user_id
                && v.epoch == user.epoch
                && v.at.elapsed() < VERIFY_CACHE_TTL
                && constant_time_eq(&v.digest, &digest)
            {
                return true;
            }
        }
        let ok = password::verify_blocking(password.to_owned(), user.password_hash.clone()).await;
        if ok {
            self.verified.lock().insert(
                user.username.clone(),
                Verified {
                    user_id: user.user_id.clone(),
                    epoch: user.epoch,
                    digest,
                    at: Instant::now(),
                },
            );
        }
        ok
    }

    /// A keyed digest of a password: lets the cache compare passwords without keeping them.
    fn digest(&self, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_salt)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

enum TokenCheck {
    Valid(Caller),
    Revoked,
    Unknown,
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
