//! Password hashing with argon2id (PHC strings), off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use std::sync::OnceLock;

/// Hashes `password` with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, which are
/// OWASP's recommended minimum) and a random 16-byte salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Returns true when `password` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a random password, computed once: verifying against it costs what a real
/// verification costs and never succeeds.
pub fn dummy_hash() -> String {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let mut secret = [0u8; 24];
            rand::rng().fill_bytes(&mut secret);
            let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            hash(&password).unwrap_or_default()
        })
        .clone()
}

/// [`hash`] on the blocking pool.
pub async fn hash_blocking(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| e.to_string())?
}

/// Verifies `password` against [`dummy_hash`] on the blocking pool, to spend the time a real
/// verification takes when there is no user to verify against.
pub async fn verify_dummy_blocking(password: String) {
    let _ = tokio::task::spawn_blocking(move || verify(&password, &dummy_hash())).await;
}

/// [`verify`] on the blocking pool.
pub async fn verify_blocking(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = hash("s3cret!").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("s3cret!", &h));
        assert!(!verify("s3cret", &h));
        assert!(!verify("s3cret!", "not a hash"));
        let h2 = hash("s3cret!").expect("hash");
        assert_ne!(h, h2, "salts differ");
        assert!(dummy_hash().starts_with("$argon2id$"));
        assert!(!verify("", &dummy_hash()));
    }
}
