//! The key format of contract section 2: `<prefix><id><secret><checksum>`.
//!
//! Everything here is pure: generation takes its randomness from the caller's RNG (the OS CSPRNG in
//! production), parsing never allocates on the failure path, and hashing is a keyed HMAC whose
//! comparison runs in constant time.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Hex characters of the public key id (6 random bytes).
pub const ID_LEN: usize = 12;
/// Hex characters of the secret part (24 random bytes).
pub const SECRET_LEN: usize = 48;
/// Hex characters of the CRC32 checksum.
pub const CHECKSUM_LEN: usize = 8;
/// Everything after the prefix.
pub const BODY_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Shortest and longest prefix allowed.
pub const PREFIX_MIN: usize = 2;
pub const PREFIX_MAX: usize = 16;

/// A full API key. Its `Debug` and `Display` never print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// The whole key, for showing it once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a string already known to be a well-formed key.
    pub fn from_parsed(parsed: &ParsedKey<'_>) -> Self {
        SecretKey(parsed.whole.to_owned())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match parse(&self.0) {
            Ok(p) => write!(f, "{}{}••••", p.prefix, p.id),
            Err(_) => f.write_str("<redacted>"),
        }
    }
}

/// A key split into its parts. Borrowed from the presented token.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    pub whole: &'a str,
    pub prefix: &'a str,
    pub id: &'a str,
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("prefix", &self.prefix)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a token is not a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the key has the wrong length")]
    Length,
    #[error("the key's prefix is not valid")]
    Prefix,
    #[error("the key contains characters other than lowercase hex after its prefix")]
    Characters,
    #[error("the key's checksum does not match")]
    Checksum,
}

/// Whether `prefix` is a valid key prefix: `^[a-z0-9]+[_-]([a-z0-9]+[_-])?$`, 2 to 16 characters.
pub fn is_valid_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    if !(PREFIX_MIN..=PREFIX_MAX).contains(&bytes.len()) {
        return false;
    }
    let mut groups = 0;
    let mut run = 0;
    for &b in bytes {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => run += 1,
            b'_' | b'-' if run > 0 => {
                groups += 1;
                run = 0;
            }
            _ => return false,
        }
    }
    run == 0 && (1..=2).contains(&groups)
}

fn is_lower_hex(s: &str) -> bool {
    // A fold without early exit, which compiles to a few vector instructions.
    s.bytes()
        .fold(true, |ok, b| ok & matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn checksum_hex(text: &str) -> [u8; CHECKSUM_LEN] {
    let crc = crc32fast::hash(text.as_bytes());
    let mut out = [0u8; CHECKSUM_LEN];
    hex::encode_to_slice(crc.to_be_bytes(), &mut out).expect("4 bytes encode to 8 hex characters");
    out
}

/// Splits and checks a presented token. Cheap, and rejects garbage before any storage access.
pub fn parse(token: &str) -> Result<ParsedKey<'_>, FormatError> {
    let len = token.len();
    if !(PREFIX_MIN + BODY_LEN..=PREFIX_MAX + BODY_LEN).contains(&len) || !token.is_ascii() {
        return Err(FormatError::Length);
    }
    let (prefix, body) = token.split_at(len - BODY_LEN);
    if !is_valid_prefix(prefix) {
        return Err(FormatError::Prefix);
    }
    if !is_lower_hex(body) {
        return Err(FormatError::Characters);
    }
    let (signed, checksum) = token.split_at(len - CHECKSUM_LEN);
    if checksum.as_bytes() != checksum_hex(signed) {
        return Err(FormatError::Checksum);
    }
    Ok(ParsedKey {
        whole: token,
        prefix,
        id: &body[..ID_LEN],
    })
}

/// Whether every one of `differences` (XORs of two values' words) is zero, in time that does not
/// depend on where one is not: they are all OR-ed together, and only the result is compared, in
/// constant time. (Comparing each word with `subtle` costs an optimization barrier per word.)
fn no_difference(differences: impl Iterator<Item = u64>) -> bool {
    differences.fold(0u64, |acc, d| acc | d).ct_eq(&0).into()
}

/// Generates a fresh key with `prefix` (which the caller has validated).
pub fn generate(prefix: &str, rng: &mut (impl RngCore + CryptoRng)) -> SecretKey {
    let mut id = [0u8; ID_LEN / 2];
    let mut secret = [0u8; SECRET_LEN / 2];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let mut s = String::with_capacity(prefix.len() + BODY_LEN);
    s.push_str(prefix);
    s.push_str(&hex::encode(id));
    s.push_str(&hex::encode(secret));
    let checksum = checksum_hex(&s);
    s.push_str(std::str::from_utf8(&checksum).expect("hex is ASCII"));
    SecretKey(s)
}

/// Finds a well-formed key anywhere in `text` (a URL, a query string), for `key_in_url`.
pub fn find_in(text: &str) -> Option<ParsedKey<'_>> {
    let bytes = text.as_bytes();
    if bytes.len() < PREFIX_MIN + BODY_LEN {
        return None;
    }
    // A key ends with BODY_LEN hex characters; look at every maximal hex run long enough to hold
    // one and try each prefix length in front of its last BODY_LEN characters.
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_hexdigit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'a'..=b'f') {
            i += 1;
        }
        let run_end = i;
        if run_end - start >= BODY_LEN {
            let body_start = run_end - BODY_LEN;
            for plen in PREFIX_MIN..=PREFIX_MAX.min(body_start) {
                if let Some(candidate) = text.get(body_start - plen..run_end) {
                    if let Ok(parsed) = parse(candidate) {
                        return Some(parsed);
                    }
                }
            }
        }
        if i == start {
            i += 1;
        }
    }
    None
}

/// HMAC-SHA256 of a whole key under a server-side pepper.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(KeyHash(out))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        let word = |h: &[u8; 32], i: usize| {
            u64::from_ne_bytes(h[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        };
        no_difference((0..4).map(|i| word(&self.0, i) ^ word(&other.0, i)))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// A versioned pepper. The HMAC state is keyed once and cloned per use.
#[derive(Clone)]
pub struct Pepper {
    version: i64,
    mac: Hmac<Sha256>,
}

impl Pepper {
    /// `secret` must come from configuration, never from the database.
    pub fn new(version: i64, secret: &[u8]) -> Self {
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Pepper { version, mac }
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn hash(&self, key: &str) -> KeyHash {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper(v{}, <redacted>)", self.version)
    }
}

/// The current pepper, used for new keys, and older ones still needed to check existing keys.
#[derive(Clone, Debug)]
pub struct Peppers {
    current: Pepper,
    previous: Vec<Pepper>,
}

impl Peppers {
    pub fn new(current: Pepper, previous: Vec<Pepper>) -> Self {
        Peppers { current, previous }
    }

    pub fn current(&self) -> &Pepper {
        &self.current
    }

    pub fn get(&self, version: i64) -> Option<&Pepper> {
        if self.current.version == version {
            return Some(&self.current);
        }
        self.previous.iter().find(|p| p.version == version)
    }

    /// The HMAC of `key` under every pepper, the current one first, with each pepper's version:
    /// what a key could be stored under.
    pub fn hashes(&self, key: &str) -> Vec<(i64, KeyHash)> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|p| (p.version, p.hash(key)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn generated_keys_parse_back_into_their_parts() {
        let key = generate("kw_live_", &mut OsRng);
        let parsed = parse(key.expose()).unwrap();
        assert_eq!(parsed.prefix, "kw_live_");
        assert_eq!(parsed.id.len(), ID_LEN);
        assert_eq!(key.expose().len(), "kw_live_".len() + BODY_LEN);
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = generate("sk_live_", &mut OsRng);
        let mut s = key.expose().to_owned();
        let i = 8 + 20;
        let c = if &s[i..=i] == "a" { "b" } else { "a" };
        s.replace_range(i..=i, c);
        assert_eq!(parse(&s).unwrap_err(), FormatError::Checksum);
    }

    #[test]
    fn prefixes_follow_the_contract_pattern() {
        for ok in ["kw_live_", "tk_live_", "sk_live_", "tkst-", "a_", "a1-b2_"] {
            assert!(is_valid_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "k",
            "kw",
            "KW_",
            "kw_live",
            "kw__",
            "_kw_",
            "kw_live_x_",
            "kw.live_",
            "abcdefghijklmno_x",
        ] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn parse_rejects_wrong_length_prefix_and_case() {
        let key = generate("kw_test_", &mut OsRng);
        let s = key.expose();
        assert_eq!(parse(&s[1..]).unwrap_err(), FormatError::Checksum);
        assert_eq!(parse(&s[..s.len() - 1]).unwrap_err(), FormatError::Prefix);
        assert_eq!(parse("short").unwrap_err(), FormatError::Length);
        assert_eq!(parse(&s.to_uppercase()).unwrap_err(), FormatError::Prefix);
        let upper_body = format!("kw_test_{}", s[8..].to_uppercase());
        assert_eq!(parse(&upper_body).unwrap_err(), FormatError::Characters);
    }

    #[test]
    fn debug_and_display_never_print_the_secret() {
        let key = generate("kw_live_", &mut OsRng);
        let secret_part = &key.expose()[8 + ID_LEN..8 + ID_LEN + SECRET_LEN];
        assert!(!format!("{key:?}").contains(secret_part));
        assert!(!format!("{key}").contains(secret_part));
        assert!(format!("{key}").starts_with("kw_live_"));
    }

    #[test]
    fn finds_a_key_inside_a_url() {
        let key = generate("kw_live_", &mut OsRng);
        let url = format!("/v1/keys?api_key={}&x=1", key.expose());
        assert_eq!(find_in(&url).unwrap().whole, key.expose());
        let custom = generate("tkst-", &mut OsRng);
        let url = format!("/things/{}", custom.expose());
        assert_eq!(find_in(&url).unwrap().whole, custom.expose());
        assert!(find_in("/v1/keys/key_3f9a0c1e7b2d?limit=10").is_none());
    }

    #[test]
    fn hashes_differing_in_any_one_byte_compare_unequal() {
        let h = KeyHash([7u8; 32]);
        assert!(h.ct_eq(&KeyHash([7u8; 32])));
        for i in 0..32 {
            let mut other = [7u8; 32];
            other[i] ^= 0x80;
            assert!(!h.ct_eq(&KeyHash(other)), "byte {i}");
        }
    }

    #[test]
    fn hashes_depend_on_the_pepper_and_compare_equal_only_for_the_same_key() {
        let a = Pepper::new(1, b"pepper-one-pepper-one-pepper-one");
        let b = Pepper::new(2, b"pepper-two-pepper-two-pepper-two");
        let key = generate("kw_live_", &mut OsRng);
        assert!(a.hash(key.expose()).ct_eq(&a.hash(key.expose())));
        assert!(!a.hash(key.expose()).ct_eq(&b.hash(key.expose())));
        let other = generate("kw_live_", &mut OsRng);
        assert!(!a.hash(key.expose()).ct_eq(&a.hash(other.expose())));
        let h = a.hash(key.expose());
        assert!(KeyHash::from_hex(&h.to_hex()).unwrap().ct_eq(&h));
    }
}
