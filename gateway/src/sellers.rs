//! Sellers (tenants) and their API keys. Keys are shown once at creation and
//! stored only as SHA-256 hashes: a key carries ~238 random bits, so a fast
//! hash cannot be brute-forced and lookups stay a single index probe.

use payments::vault::Vault;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use streams::clock::Millis;
use streams::ids::{random_token, SellerId};

/// Every API key starts with this.
pub const KEY_PREFIX: &str = "hk_";

/// Is `key` shaped like a Haul API key? (Checked before any lookup.)
pub fn valid_key_format(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX)
        .is_some_and(|body| (20..=80).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random API key.
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", random_token(40))
}

pub async fn create_seller(pool: &AnyPool, name: &str, is_demo: bool, now: Millis) -> Result<SellerId, sqlx::Error> {
    let id = SellerId::generate();
    sqlx::query("INSERT INTO sellers (id, name, is_demo, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id.as_str())
        .bind(name)
        .bind(i64::from(is_demo))
        .bind(now)
        .execute(pool)
        .await?;
    Ok(id)
}

/// Stores `key` (already generated or given) for the seller. Returns false if
/// the key was already registered.
pub async fn add_key(pool: &AnyPool, seller: &SellerId, key: &str, now: Millis) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO api_keys (key_hash, seller_id, key_prefix, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_hash) DO NOTHING",
    )
    .bind(hash_key(key))
    .bind(seller.as_str())
    .bind(&key[..key.len().min(7)])
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The seller a key belongs to, if the key is known and not revoked.
pub async fn seller_for_key(pool: &AnyPool, key: &str) -> Result<Option<SellerId>, sqlx::Error> {
    let row = sqlx::query("SELECT seller_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(hash_key(key))
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("seller_id"))
        .transpose()?
        .and_then(|s| SellerId::parse(&s).ok()))
}

/// The demo seller, if one was created.
pub async fn demo_seller(pool: &AnyPool) -> Result<Option<SellerId>, sqlx::Error> {
    let row = sqlx::query("SELECT id FROM sellers WHERE is_demo = 1 ORDER BY created_at LIMIT 1")
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("id"))
        .transpose()?
        .and_then(|s| SellerId::parse(&s).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate_key();
        assert!(valid_key_format(&k), "{k}");
        assert!(!valid_key_format("hk_short"));
        assert!(!valid_key_format("sk_0123456789012345678901234"));
        assert_ne!(hash_key(&k), k);
        assert_eq!(hash_key(&k).len(), 64);
    }
}

/// Sellers' keys and widget settings over one pool, as requests use them.
/// The widget secret is sealed at rest with the credentials key.
#[derive(Clone)]
pub struct Sellers {
    pool: AnyPool,
    vault: Vault,
}

/// A stored widget secret starts with this when sealed; one without it was
/// written before sealing (the plain `wsk_…`, sealed when replaced).
const SEALED: &str = "sealed:";

fn widget_context(seller: &SellerId) -> String {
    format!("sellers:{seller}:widget_secret")
}

impl Sellers {
    pub fn new(pool: AnyPool, vault: Vault) -> Self {
        Sellers { pool, vault }
    }

    /// A new seller (no key yet).
    pub async fn create(&self, name: &str, is_demo: bool, now: Millis) -> Result<SellerId, sqlx::Error> {
        create_seller(&self.pool, name, is_demo, now).await
    }

    /// Adds an API key (`false`: it was there already).
    pub async fn add_key(&self, seller: &SellerId, key: &str, now: Millis) -> Result<bool, sqlx::Error> {
        add_key(&self.pool, seller, key, now).await
    }

    /// The demo seller, once made.
    pub async fn demo(&self) -> Result<Option<SellerId>, sqlx::Error> {
        demo_seller(&self.pool).await
    }

    /// The seller an API key belongs to.
    pub async fn for_key(&self, key: &str) -> Result<Option<SellerId>, sqlx::Error> {
        seller_for_key(&self.pool, key).await
    }

    /// The secret a seller's pages sign checkout parameters with, if set.
    pub async fn widget_secret(&self, seller: &SellerId) -> Result<Option<String>, sqlx::Error> {
        let secret: Option<Option<String>> = sqlx::query_scalar("SELECT widget_secret FROM sellers WHERE id = $1")
            .bind(seller.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(secret.flatten().and_then(|stored| match stored.strip_prefix(SEALED) {
            // A secret that does not open under this key is no secret.
            Some(sealed) => self.vault.open(sealed, &widget_context(seller)).ok(),
            None => Some(stored),
        }))
    }

    /// Replaces the widget secret (the old one stops working).
    pub async fn set_widget_secret(&self, seller: &SellerId, secret: &str) -> Result<(), sqlx::Error> {
        let sealed = format!("{SEALED}{}", self.vault.seal(secret, &widget_context(seller)));
        sqlx::query("UPDATE sellers SET widget_secret = $1 WHERE id = $2")
            .bind(sealed)
            .bind(seller.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The origins that may frame the seller's checkout pages.
    pub async fn widget_origins(&self, seller: &str) -> Result<Vec<String>, sqlx::Error> {
        let raw: Option<Option<String>> = sqlx::query_scalar("SELECT widget_origins FROM sellers WHERE id = $1")
            .bind(seller)
            .fetch_optional(&self.pool)
            .await?;
        Ok(raw
            .flatten()
            .unwrap_or_default()
            .split(' ')
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// The frame-ancestors of a seller's pages: its origins, or nobody.
    pub async fn frame_ancestors(&self, seller: &str) -> Result<String, sqlx::Error> {
        let origins = self.widget_origins(seller).await?;
        Ok(if origins.is_empty() {
            "'none'".to_owned()
        } else {
            origins.join(" ")
        })
    }

    pub async fn set_widget_origins(&self, seller: &SellerId, origins: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sellers SET widget_origins = $1 WHERE id = $2")
            .bind(origins.join(" "))
            .bind(seller.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
