//! Signed, expiring session tokens: `v1.<payload>.<mac>`.
//!
//! The payload is base64url (no padding) JSON `{"u": user_id, "e": password_epoch, "x":
//! expiry_unix_ms}`; the MAC is HMAC-SHA256 over `v1.<payload>` under the cluster's key. Expiry
//! is wall time (tokens travel between nodes); verification takes `now` explicitly, and the
//! server reads it from a [`Clock`].

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

/// The secret that signs tokens. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The key as standard base64, as stored in `$AuthKeyCreated`.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses a key stored by [`TokenKey::to_base64`].
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    #[serde(rename = "u")]
    pub user_id: String,
    /// The user's password epoch when the token was issued.
    #[serde(rename = "e")]
    pub epoch: i64,
    /// Expiry, Unix milliseconds.
    #[serde(rename = "x")]
    pub expires_ms: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of ours, or a forged one.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Signs `claims`.
pub fn sign(key: &TokenKey, claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{tag}")
}

/// Checks a token's signature (in constant time) and expiry at `now_ms`.
pub fn verify(key: &TokenKey, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let (version, payload) = signed.split_once('.').ok_or(TokenError::Invalid)?;
    if version != VERSION {
        return Err(TokenError::Invalid);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Invalid)?;
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag).map_err(|_| TokenError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
    if now_ms >= claims.expires_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The clock tokens are issued and checked with: wall time in Unix milliseconds, read once at
/// start and then advanced by the monotonic clock of the runtime. It does not jump when the
/// system clock is stepped, and it follows `tokio::time::pause`/`advance` in tests.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_ms: i64,
    started: tokio::time::Instant,
}

impl Clock {
    /// A clock anchored at the current wall time.
    pub fn start() -> Self {
        Self {
            wall_ms: chrono::Utc::now().timestamp_millis(),
            started: tokio::time::Instant::now(),
        }
    }

    /// The current time in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.wall_ms.saturating_add(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_ms: i64) -> Claims {
        Claims {
            user_id: "0191b5e0-0000-7000-8000-000000000001".into(),
            epoch: 7,
            expires_ms,
        }
    }

    #[test]
    fn signs_and_verifies_until_expiry() {
        let key = TokenKey::generate();
        let t = sign(&key, &claims(1_000));
        assert!(t.starts_with("v1."), "{t}");
        assert_eq!(verify(&key, &t, 999), Ok(claims(1_000)));
        assert_eq!(verify(&key, &t, 1_000), Err(TokenError::Expired));
        assert_eq!(verify(&key, &t, 5_000), Err(TokenError::Expired));
    }

    #[test]
    fn rejects_other_keys_and_tampering() {
        let key = TokenKey::generate();
        let t = sign(&key, &claims(1_000));
        assert_eq!(
            verify(&TokenKey::generate(), &t, 0),
            Err(TokenError::Invalid)
        );
        // Forge a later expiry with the original tag.
        let (_, tag) = t.rsplit_once('.').expect("tag");
        let forged_payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(i64::MAX)).expect("json"));
        let forged = format!("v1.{forged_payload}.{tag}");
        assert_eq!(verify(&key, &forged, 0), Err(TokenError::Invalid));
        for junk in [
            "",
            "v1",
            "v1..",
            "v2.a.b",
            "0b6a1d9e-uuid-like",
            &format!("{t}x"),
        ] {
            assert_eq!(verify(&key, junk, 0), Err(TokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn key_round_trips_and_hides_itself() {
        let key = TokenKey::generate();
        assert_eq!(TokenKey::from_base64(&key.to_base64()), Some(key.clone()));
        assert_eq!(TokenKey::from_base64("c2hvcnQ="), None);
        assert_eq!(format!("{key:?}"), "TokenKey(..)");
    }
}
