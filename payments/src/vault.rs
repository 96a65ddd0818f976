//! Sellers' acquirer credentials at rest: sealed with ChaCha20-Poly1305
//! under a key from configuration, bound to the row they belong to (a
//! sealed secret copied to another row does not open). Stored as base64 of
//! `nonce (12 bytes) || ciphertext and tag`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Seals and opens credentials. It has no `Debug`: nothing of its key is
/// ever printed.
#[derive(Clone)]
pub struct Vault {
    cipher: ChaCha20Poly1305,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with this key for this row")]
    WrongKey,
}

impl Vault {
    /// A vault keyed by SHA-256 of the configured secret (any length of at
    /// least 32 characters).
    pub fn new(secret: &str) -> Self {
        let key = Sha256::digest(secret.as_bytes());
        Vault {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Seals `plain` for the row `context` (e.g. the account id).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encrypts any input below 256 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<String, VaultError> {
        let raw = STANDARD.decode(sealed).map_err(|_| VaultError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, body) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| VaultError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| VaultError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_row() {
        let v = Vault::new("a-configured-key-of-some-length-0123456789");
        let sealed = v.seal("terminal-password", "acq_1");
        assert!(!sealed.contains("terminal-password"));
        assert_ne!(sealed, v.seal("terminal-password", "acq_1"), "a fresh nonce each time");
        assert_eq!(v.open(&sealed, "acq_1").unwrap(), "terminal-password");
        assert_eq!(v.open(&sealed, "acq_2"), Err(VaultError::WrongKey));
        let other = Vault::new("another-configured-key-of-some-length-0123");
        assert_eq!(other.open(&sealed, "acq_1"), Err(VaultError::WrongKey));
        assert_eq!(v.open("not base64!", "acq_1"), Err(VaultError::Malformed));
        assert_eq!(v.open("c2hvcnQ=", "acq_1"), Err(VaultError::Malformed));
        let mut flipped = STANDARD.decode(&sealed).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(v.open(&STANDARD.encode(flipped), "acq_1"), Err(VaultError::WrongKey));
    }
}
