//! Password hashing (argon2id with OWASP's parameters) and the password policy.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// OWASP's first argon2id configuration: 19 MiB, two passes, one lane.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Passes over the memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Lanes.
pub const ARGON2_PARALLELISM: u32 = 1;

fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .map_err(|e| Error::storage(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks a new password against the policy; the error names `field`.
pub(crate) fn check_policy(
    field: &str,
    password: &str,
    min_length: usize,
    max_length: usize,
) -> Result<()> {
    let chars = password.chars().count();
    if chars < min_length {
        return Err(Error::invalid(
            field,
            format!("the password must be at least {min_length} characters long"),
        ));
    }
    if chars > max_length {
        return Err(Error::invalid(
            field,
            format!("the password must be at most {max_length} characters long"),
        ));
    }
    Ok(())
}

/// Hashes running at once, process-wide: each holds 19 MiB and a core, so a
/// burst of sign-ins queues here instead of exhausting memory.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(2 * cores)
    })
}

/// Runs `work` on the blocking pool under a hashing permit.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _permit = hashing_permits()
        .acquire()
        .await
        .map_err(|e| Error::storage(format!("password hashing is shut down: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::storage(format!("password hashing task failed: {e}")))?
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`),
/// off the async runtime's threads.
pub(crate) async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::storage(format!("no randomness: {e}")))?;
    hashing(move || {
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| Error::storage(format!("argon2 salt: {e}")))?;
        hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::storage(format!("argon2: {e}")))
    })
    .await
}

/// Whether `password` matches the PHC string `phc`, off the async runtime's threads.
pub(crate) async fn verify(password: &str, phc: &str) -> Result<bool> {
    let password = password.to_owned();
    let phc = phc.to_owned();
    hashing(move || {
        let parsed = PasswordHash::new(&phc)
            .map_err(|e| Error::storage(format!("a stored password hash is corrupt: {e}")))?;
        Ok(hasher()?
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

/// A hash of a random password with the same parameters: sign-ins for unknown
/// emails verify against it, so they cost what a real one costs.
pub(crate) async fn dummy_hash() -> Result<String> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h.clone());
    }
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| Error::storage(format!("no randomness: {e}")))?;
    let h = hash(&format!("{random:?}")).await?;
    Ok(DUMMY.get_or_init(|| h).clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash("correct horse battery staple").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", &h).await.unwrap());
        assert!(!verify("correct horse battery stapl", &h).await.unwrap());
        assert_ne!(
            h,
            hash("correct horse battery staple").await.unwrap(),
            "salted"
        );
    }

    #[test]
    fn policy_names_the_field() {
        let e = check_policy("new_password", "short", 8, 1024).unwrap_err();
        assert!(e.to_string().contains("new_password"), "{e}");
        assert!(check_policy("password", &"x".repeat(1025), 8, 1024).is_err());
        assert!(check_policy("password", "long enough", 8, 1024).is_ok());
    }
}
