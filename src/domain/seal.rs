//! Encryption of recoverable keys: AES-256-GCM under a key from configuration, with the key's id
//! as associated data so that a ciphertext cannot be moved to another row.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

/// Seals and opens secrets. `Debug` prints nothing of the key.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer(Aes256Gcm::new(key.into()))
    }

    /// `hex(nonce || ciphertext)`.
    pub fn seal(&self, plaintext: &str, aad: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        hex::encode(out)
    }

    /// The plaintext, or `None` if the data was altered, moved, or sealed under another key.
    pub fn open(&self, sealed: &str, aad: &str) -> Option<String> {
        let bytes = hex::decode(sealed).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(12);
        let pt = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_id() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("kw_live_secret", "key_1");
        assert!(!sealed.contains("secret"));
        assert_eq!(s.open(&sealed, "key_1").as_deref(), Some("kw_live_secret"));
        assert_eq!(s.open(&sealed, "key_2"), None, "bound to its row");
        assert_eq!(Sealer::new(&[8; 32]).open(&sealed, "key_1"), None);
        let mut tampered = sealed.clone();
        tampered.replace_range(30..31, if &sealed[30..31] == "0" { "1" } else { "0" });
        assert_eq!(s.open(&tampered, "key_1"), None);
        assert_ne!(s.seal("x", "a"), s.seal("x", "a"), "fresh nonce each time");
    }
}
