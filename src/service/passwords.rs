//! Member passwords: argon2id, computed off the async runtime. Checking a sign-in for an unknown
//! email still runs one verification against a dummy hash, so timing does not reveal which emails
//! exist.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::{Result, ServiceError};
use crate::domain::validate::FieldError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;
/// Longest password accepted (bounds the hashing cost of a request).
pub const MAX_LEN: usize = 256;

fn argon2() -> Argon2<'static> {
    // OWASP's recommended argon2id settings: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password's length; returns a field error for `field`.
pub fn check_new(field: &str, password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(ServiceError::Validation(vec![FieldError {
            field: field.into(),
            message: format!("must be {MIN_LEN} to {MAX_LEN} characters"),
        }]));
    }
    Ok(())
}

/// Hashes a password (PHC string) on a blocking thread.
pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Conflict(format!("could not hash the password: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Conflict(format!("password hashing failed: {e}")))?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(b"not-a-real-password", &salt)
            .expect("hashing a constant works")
            .to_string()
    })
}

/// Whether `password` matches `stored` (a PHC string). With `stored = None` (unknown user, or no
/// password set) it verifies against a dummy hash and answers false, taking the same time.
pub async fn verify(password: &str, stored: Option<&str>) -> bool {
    let password = password.to_owned();
    let (stored, real) = match stored {
        Some(s) => (s.to_owned(), true),
        None => (dummy_hash().to_owned(), false),
    };
    tokio::task::spawn_blocking(move || {
        let ok = PasswordHash::new(&stored)
            .map(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)).await);
        assert!(!verify("wrong horse battery", Some(&h)).await);
        assert!(!verify("correct horse battery", None).await);
        assert!(!verify("x", Some("not a phc string")).await);
    }

    #[test]
    fn new_passwords_have_a_length_range() {
        assert!(check_new("password", "short").is_err());
        assert!(check_new("password", "long enough pass").is_ok());
        assert!(check_new("password", &"x".repeat(257)).is_err());
    }
}
