//! Password hashing with argon2id (PHC strings), off the async runtime.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use std::sync::OnceLock;

/// Capacity of the working memory of one hash: more than glibc malloc's largest dynamic mmap
/// threshold (32 MiB on 64-bit). Only the first `Params::block_count()` blocks (19 MiB with the
/// defaults) are ever touched, so this costs address space, not memory. It matters because glibc
/// serves a chunk this large with its own mmap and gives it back to the system when it is
/// freed, *without* raising its mmap threshold; the 19 MiB chunk the argon2 crate would allocate
/// itself raises the threshold to 19 MiB when freed, after which every later hash (one per
/// Basic-authenticated call) is carved from a heap arena that keeps the memory for the life of
/// the process: about 20 MiB of idle RSS per blocking thread that ever hashed.
const WORKSPACE_CAPACITY_BYTES: usize = 33 << 20;

/// Runs argon2 into `out` on working memory that is returned to the system afterwards.
fn argon2_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let blocks = argon.params().block_count();
    let mut memory: Vec<Block> =
        Vec::with_capacity(blocks.max(WORKSPACE_CAPACITY_BYTES / Block::SIZE));
    memory.resize(blocks, Block::default());
    argon
        .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
        .map_err(|e| e.to_string())
}

/// Hashes `password` with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, which are
/// OWASP's recommended minimum) and a random 16-byte salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt_string = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&argon, password.as_bytes(), &salt, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params)
            .try_into()
            .map_err(|e: argon2::password_hash::Error| e.to_string())?,
        salt: Some(salt_string.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Returns true when `password` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    verify_phc(password, phc).unwrap_or(false)
}

fn verify_phc(password: &str, phc: &str) -> Result<bool, String> {
    let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| e.to_string())?;
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    argon2_into(&argon, password.as_bytes(), salt_bytes, &mut out)?;
    // Output's equality is constant-time.
    Ok(Output::new(&out).map_err(|e| e.to_string())? == expected)
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

    #[test]
    fn verifies_hashes_of_the_argon2_crate() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let theirs = Argon2::default()
            .hash_password(b"pw", &salt)
            .expect("hash")
            .to_string();
        assert!(verify("pw", &theirs));
        assert!(!verify("pW", &theirs));
        let ours = hash("pw").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        use argon2::password_hash::PasswordVerifier;
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"px", &parsed).is_err());
    }
}
