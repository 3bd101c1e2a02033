//! Standard Webhooks signing: the `whsec_` secret, its sealed storage, and the three headers.
//!
//! `webhook-signature` is `v1,` and the base64 of HMAC-SHA256 under the secret's bytes (the
//! base64 after `whsec_`, decoded) over `{webhook-id}.{webhook-timestamp}.{body}`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::key::{Pepper, Peppers};
use crate::domain::seal::Sealer;

/// What a secret is written with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes of a new secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;
/// The label a pepper is turned into the key that seals webhook secrets with.
const SEALING_LABEL: &str = "keyward:webhook-signing-secrets:v1";

/// A signing secret. `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SigningSecret(bytes)
    }

    /// `whsec_<base64>`, as shown once at creation.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }

    /// A secret in its shown form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = BASE64.decode(text.strip_prefix(SECRET_PREFIX)?).ok()?;
        (!bytes.is_empty()).then_some(SigningSecret(bytes))
    }

    /// The value of `webhook-signature` for a message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// Seals secrets under a key derived from a pepper (so the database alone never holds what signs),
/// bound to their endpoint's id.
pub struct SecretBox<'a> {
    peppers: &'a Peppers,
}

impl<'a> SecretBox<'a> {
    pub fn new(peppers: &'a Peppers) -> Self {
        SecretBox { peppers }
    }

    fn sealer(pepper: &Pepper) -> Sealer {
        Sealer::new(&pepper.hash(SEALING_LABEL).0)
    }

    /// The sealed secret and the version of the pepper it is sealed under.
    pub fn seal(&self, secret: &SigningSecret, webhook_id: &str) -> (String, i64) {
        let pepper = self.peppers.current();
        (
            Self::sealer(pepper).seal(&secret.expose(), webhook_id),
            pepper.version(),
        )
    }

    /// The secret, or `None` when its pepper is no longer configured or the data was altered.
    pub fn open(&self, sealed: &str, version: i64, webhook_id: &str) -> Option<SigningSecret> {
        let pepper = self.peppers.get(version)?;
        SigningSecret::parse(&Self::sealer(pepper).open(sealed, webhook_id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_never_print() {
        let s = SigningSecret::generate();
        let shown = s.expose();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&shown), Some(s.clone()));
        assert!(!format!("{s:?}").contains(&shown[6..]));
        assert_eq!(SigningSecret::parse("whsec_"), None);
        assert_eq!(SigningSecret::parse("sk_abc"), None);
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_pepper() {
        let peppers = Peppers::new(
            Pepper::new(2, b"a-pepper-of-at-least-32-bytes-long!!"),
            vec![],
        );
        let other = Peppers::new(
            Pepper::new(2, b"another-pepper-of-32-bytes-or-more!!"),
            vec![],
        );
        let s = SigningSecret::generate();
        let (sealed, version) = SecretBox::new(&peppers).seal(&s, "wh_1");
        assert_eq!(version, 2);
        assert!(!sealed.contains(&s.expose()));
        assert_eq!(SecretBox::new(&peppers).open(&sealed, 2, "wh_1"), Some(s));
        assert_eq!(SecretBox::new(&peppers).open(&sealed, 2, "wh_2"), None);
        assert_eq!(SecretBox::new(&peppers).open(&sealed, 1, "wh_1"), None);
        assert_eq!(SecretBox::new(&other).open(&sealed, 2, "wh_1"), None);
    }
}
