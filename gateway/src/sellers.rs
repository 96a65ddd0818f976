//! Sellers (tenants) and their API keys. Keys are shown once at creation and
//! stored only as SHA-256 hashes: a key carries ~238 random bits, so a fast
//! hash cannot be brute-forced and lookups stay a single index probe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payments::vault::Vault;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use streams::clock::Millis;
use streams::ids::{random_token, SellerId};

/// Every API key starts with this.
pub const KEY_PREFIX: &str = "hk_";

/// A seller row's mode: live money or test money, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Test,
}

impl Mode {
    pub fn parse(word: &str) -> Option<Mode> {
        match word {
            "live" => Some(Mode::Live),
            "test" => Some(Mode::Test),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    fn from_flag(live: bool) -> Mode {
        if live {
            Mode::Live
        } else {
            Mode::Test
        }
    }

    /// What this mode's keys start with: `hk_live_` or `hk_test_`.
    pub fn key_prefix(self) -> &'static str {
        match self {
            Mode::Live => "hk_live_",
            Mode::Test => "hk_test_",
        }
    }
}

/// Is `key` shaped like a Haul API key (`hk_live_…`, `hk_test_…`, or a key
/// made before modes, `hk_…`)? Checked before any lookup.
pub fn valid_key_format(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(KEY_PREFIX) else {
        return false;
    };
    let body = rest
        .strip_prefix("live_")
        .or_else(|| rest.strip_prefix("test_"))
        .unwrap_or(rest);
    (20..=80).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The mode a key names (`None` for a key made before modes: its seller
/// row's mode is the key's).
pub fn key_mode(key: &str) -> Option<Mode> {
    if key.starts_with(Mode::Live.key_prefix()) {
        Some(Mode::Live)
    } else if key.starts_with(Mode::Test.key_prefix()) {
        Some(Mode::Test)
    } else {
        None
    }
}

fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random API key of `mode`.
pub fn generate_key(mode: Mode) -> String {
    format!("{}{}", mode.key_prefix(), random_token(40))
}

async fn insert_row(
    pool: &AnyPool,
    name: &str,
    is_demo: bool,
    mode: Mode,
    account: Option<&SellerId>,
    now: Millis,
) -> Result<SellerId, sqlx::Error> {
    let id = SellerId::generate();
    sqlx::query(
        "INSERT INTO sellers (id, name, is_demo, livemode, account_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.as_str())
    .bind(name)
    .bind(i64::from(is_demo))
    .bind(i64::from(mode.is_live()))
    .bind(account.unwrap_or(&id).as_str())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(id)
}

/// A new seller account's row in `mode` (no key yet). The account's id is
/// this row's; its other mode is added by [`mode_of_account`].
pub async fn create_seller(
    pool: &AnyPool,
    name: &str,
    is_demo: bool,
    mode: Mode,
    now: Millis,
) -> Result<SellerId, sqlx::Error> {
    insert_row(pool, name, is_demo, mode, None, now).await
}

/// The row of `account` in `mode`, made when it is not there yet (an
/// account made before modes has a live row only). `None`: no such
/// account, or a live row asked of the demo, which is test mode only.
pub async fn mode_of_account(
    pool: &AnyPool,
    account: &SellerId,
    mode: Mode,
    now: Millis,
) -> Result<Option<SellerId>, sqlx::Error> {
    let find = || async {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM sellers WHERE account_id = $1 AND livemode = $2")
            .bind(account.as_str())
            .bind(i64::from(mode.is_live()))
            .fetch_optional(pool)
            .await?;
        Ok::<_, sqlx::Error>(id.and_then(|s| SellerId::parse(&s).ok()))
    };
    if let Some(id) = find().await? {
        return Ok(Some(id));
    }
    let row = sqlx::query("SELECT name, is_demo FROM sellers WHERE id = $1 AND account_id = $1")
        .bind(account.as_str())
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let name: String = row.try_get("name")?;
    let is_demo = row.try_get::<i64, _>("is_demo")? != 0;
    if is_demo && mode.is_live() {
        // The demo lives in test mode only.
        return Ok(None);
    }
    match insert_row(pool, &name, is_demo, mode, Some(account), now).await {
        Ok(id) => Ok(Some(id)),
        // Made by someone else meanwhile (one row per account and mode)?
        Err(e) => match find().await? {
            Some(id) => Ok(Some(id)),
            None => Err(e),
        },
    }
}

/// Stores `key` (already generated or given) for the seller, named
/// `default`. Returns false if the key was already registered.
pub async fn add_key(pool: &AnyPool, seller: &SellerId, key: &str, now: Millis) -> Result<bool, sqlx::Error> {
    Ok(add_named_key(pool, seller, key, "default", now).await?.is_some())
}

/// Stores `key` under `name`; its id (`key_…`), or none if the key was
/// already registered.
pub async fn add_named_key(
    pool: &AnyPool,
    seller: &SellerId,
    key: &str,
    name: &str,
    now: Millis,
) -> Result<Option<String>, sqlx::Error> {
    let id = format!("key_{}", random_token(20));
    let done = sqlx::query(
        "INSERT INTO api_keys (key_hash, seller_id, key_prefix, created_at, id, name) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (key_hash) DO NOTHING",
    )
    .bind(hash_key(key))
    .bind(seller.as_str())
    .bind(&key[..key.len().min(12)])
    .bind(now)
    .bind(&id)
    .bind(name)
    .execute(pool)
    .await?;
    Ok((done.rows_affected() == 1).then_some(id))
}

/// An API key as a seller sees it (never the key itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub created_at: Millis,
    /// To the minute.
    pub last_used_at: Option<Millis>,
    /// A rotated key works until then.
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl KeyInfo {
    pub fn active(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

fn key_info(row: &sqlx::any::AnyRow) -> Result<KeyInfo, sqlx::Error> {
    Ok(KeyInfo {
        id: row.try_get::<Option<String>, _>("id")?.unwrap_or_default(),
        name: row.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
        prefix: row.try_get("key_prefix")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A seller row's keys, newest first.
pub async fn keys(pool: &AnyPool, seller: &SellerId) -> Result<Vec<KeyInfo>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM api_keys WHERE seller_id = $1 ORDER BY created_at DESC, id DESC")
        .bind(seller.as_str())
        .fetch_all(pool)
        .await?;
    rows.iter().map(key_info).collect()
}

/// Makes a key stop working at `at` (now: revoked; later: expires then);
/// whether it was a working key of this seller.
pub async fn end_key(
    pool: &AnyPool,
    seller: &SellerId,
    id: &str,
    at: Millis,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    // Now: revoked; later: expires then, never later than it would anyway.
    let (column, at) = if at <= now {
        ("revoked_at", now)
    } else {
        ("expires_at", at)
    };
    let done = sqlx::query(&format!(
        "UPDATE api_keys SET {column} = $1 WHERE seller_id = $2 AND id = $3 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $1)"
    ))
    .bind(at)
    .bind(seller.as_str())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The seller row a key belongs to and its mode, if the key is known and
/// not revoked. A key that names a mode answers only for a row of that mode.
pub async fn seller_for_key(pool: &AnyPool, key: &str, now: Millis) -> Result<Option<(SellerId, Mode)>, sqlx::Error> {
    Ok(seller_for_hashed(pool, key, &hash_key(key), now)
        .await?
        .map(|o| (o.seller, o.mode)))
}

async fn seller_for_hashed(
    pool: &AnyPool,
    key: &str,
    hash: &str,
    now: Millis,
) -> Result<Option<KeyOwner>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT k.seller_id, k.id, s.livemode FROM api_keys k JOIN sellers s ON s.id = k.seller_id \
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let seller: String = row.try_get("seller_id")?;
    let mode = Mode::from_flag(row.try_get::<i64, _>("livemode")? != 0);
    if key_mode(key).is_some_and(|named| named != mode) {
        return Ok(None);
    }
    let key_id: Option<String> = row.try_get("id")?;
    Ok(SellerId::parse(&seller).ok().map(|seller| KeyOwner {
        seller,
        mode,
        key_id: key_id.unwrap_or_default(),
    }))
}

/// Whom a working API key acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub seller: SellerId,
    pub mode: Mode,
    /// The key's own id (`key_…`): who did what, in records.
    pub key_id: String,
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
        for mode in [Mode::Live, Mode::Test] {
            let k = generate_key(mode);
            assert!(valid_key_format(&k), "{k}");
            assert!(k.starts_with(mode.key_prefix()), "{k}");
            assert_eq!(key_mode(&k), Some(mode));
            assert_ne!(hash_key(&k), k);
            assert_eq!(hash_key(&k).len(), 64);
        }
        // A key made before modes names none.
        assert!(valid_key_format("hk_0123456789abcdefghij"));
        assert_eq!(key_mode("hk_0123456789abcdefghij"), None);
        for bad in [
            "hk_short",
            "sk_0123456789012345678901234",
            "hk_live_short",
            "hk_demo_0123456789abcdefghij",
            "hk_test_0123456789abcdefghij_",
            "hk_live_test_0123456789abcdefghij",
        ] {
            assert!(!valid_key_format(bad), "{bad}");
        }
    }
}

/// `scheme://host[:port]` with nothing after it, or why not.
pub fn parse_origin(s: &str) -> Result<String, &'static str> {
    let url = reqwest::Url::parse(s).map_err(|_| "not an origin")?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be http or https");
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err("must be scheme://host[:port]");
    }
    if !(url.path() == "/" && url.query().is_none() && url.fragment().is_none()) || s.ends_with('/') {
        return Err("must have no path, query or fragment");
    }
    Ok(url.origin().ascii_serialization())
}

/// At most this many widget origins per seller.
pub const MAX_ORIGINS: usize = 20;

/// A seller's widget origins checked and deduplicated, or the field at
/// fault (`origins[2]`) and why.
pub fn checked_origins(raw: &[String]) -> Result<Vec<String>, (String, String)> {
    if raw.len() > MAX_ORIGINS {
        return Err(("origins".into(), format!("at most {MAX_ORIGINS}")));
    }
    let mut origins = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let parsed = parse_origin(o).map_err(|why| (format!("origins[{i}]"), why.to_owned()))?;
        if !origins.contains(&parsed) {
            origins.push(parsed);
        }
    }
    Ok(origins)
}

/// Sellers' keys and widget settings over one pool, as requests use them.
/// The widget secret is sealed at rest with the credentials key.
#[derive(Clone)]
pub struct Sellers {
    pool: AnyPool,
    vault: Vault,
    /// Each seller's buying settings as last read, for the reserve path.
    settings: Arc<Mutex<HashMap<SellerId, (Instant, Settings)>>>,
    /// When each key's use was last written (by key hash).
    used: Arc<Mutex<HashMap<String, Millis>>>,
}

/// A seller's settings (per mode: each row has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Only viewers with a token this seller signed may hold stock;
    /// anonymous viewers may watch but not buy.
    pub signed_viewers_only: bool,
    /// Minutes a paid order may wait for the seller's confirmation before
    /// it is flagged (and `order.unconfirmed` sent); `None`: never.
    pub confirm_within_minutes: Option<u32>,
    /// The language of the seller's buyers' pages and emails when the
    /// buyer's browser asks for none Haul speaks.
    pub locale: widget::Locale,
}

/// The longest confirmation time a seller may set (a week).
pub const MAX_CONFIRM_MINUTES: u32 = 7 * 24 * 60;

/// How long the reserve path trusts a setting it read (a change reaches
/// every node within this).
pub const SETTINGS_FRESH: Duration = Duration::from_secs(2);

/// How many sellers' settings are kept before the memory starts over.
const SETTINGS_KEPT: usize = 100_000;

/// A stored widget secret starts with this when sealed; one without it was
/// written before sealing (the plain `wsk_…`, sealed when replaced).
const SEALED: &str = "sealed:";

fn widget_context(seller: &SellerId) -> String {
    format!("sellers:{seller}:widget_secret")
}

impl Sellers {
    pub fn new(pool: AnyPool, vault: Vault) -> Self {
        Sellers {
            pool,
            vault,
            settings: Arc::default(),
            used: Arc::default(),
        }
    }

    /// The seller's settings, read from the database.
    pub async fn settings(&self, seller: &SellerId) -> Result<Settings, sqlx::Error> {
        let row = sqlx::query("SELECT signed_viewers_only, confirm_within_ms, locale FROM sellers WHERE id = $1")
            .bind(seller.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let settings = match row {
            None => Settings::default(),
            Some(r) => Settings {
                signed_viewers_only: r.try_get::<i64, _>("signed_viewers_only")? != 0,
                confirm_within_minutes: r
                    .try_get::<Option<i64>, _>("confirm_within_ms")?
                    .and_then(|ms| u32::try_from(ms / 60_000).ok()),
                locale: widget::Locale::parse(&r.try_get::<String, _>("locale")?).unwrap_or_default(),
            },
        };
        self.remember(seller, settings);
        Ok(settings)
    }

    /// The seller's settings, from memory if read in the last
    /// [`SETTINGS_FRESH`] (the reserve path asks on every tap).
    pub async fn settings_fresh(&self, seller: &SellerId) -> Result<Settings, sqlx::Error> {
        if let Some((at, settings)) = self.lock_settings().get(seller) {
            if at.elapsed() < SETTINGS_FRESH {
                return Ok(*settings);
            }
        }
        self.settings(seller).await
    }

    pub async fn set_settings(&self, seller: &SellerId, settings: Settings) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sellers SET signed_viewers_only = $1, confirm_within_ms = $2, locale = $3 WHERE id = $4")
            .bind(i64::from(settings.signed_viewers_only))
            .bind(settings.confirm_within_minutes.map(|m| i64::from(m) * 60_000))
            .bind(settings.locale.tag())
            .bind(seller.as_str())
            .execute(&self.pool)
            .await?;
        self.remember(seller, settings);
        Ok(())
    }

    fn remember(&self, seller: &SellerId, settings: Settings) {
        let mut kept = self.lock_settings();
        if kept.len() >= SETTINGS_KEPT {
            kept.clear();
        }
        kept.insert(seller.clone(), (Instant::now(), settings));
    }

    fn lock_settings(&self) -> std::sync::MutexGuard<'_, HashMap<SellerId, (Instant, Settings)>> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new seller account's row in `mode` (no key yet).
    pub async fn create(&self, name: &str, is_demo: bool, mode: Mode, now: Millis) -> Result<SellerId, sqlx::Error> {
        create_seller(&self.pool, name, is_demo, mode, now).await
    }

    /// Adds an API key (`false`: it was there already).
    pub async fn add_key(&self, seller: &SellerId, key: &str, now: Millis) -> Result<bool, sqlx::Error> {
        add_key(&self.pool, seller, key, now).await
    }

    /// The demo seller, once made.
    pub async fn demo(&self) -> Result<Option<SellerId>, sqlx::Error> {
        demo_seller(&self.pool).await
    }

    /// The seller row a working API key belongs to, and its mode; the key's
    /// last use is recorded, at most once a minute per key.
    pub async fn for_key(&self, key: &str, now: Millis) -> Result<Option<KeyOwner>, sqlx::Error> {
        let hash = hash_key(key);
        let found = seller_for_hashed(&self.pool, key, &hash, now).await?;
        if found.is_some() {
            let due = {
                let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
                if used.len() > 10_000 {
                    used.clear();
                }
                let due = used.get(&hash).is_none_or(|last| now.saturating_sub(*last) >= 60_000);
                if due {
                    used.insert(hash.clone(), now);
                }
                due
            };
            if due {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2")
                    .bind(now)
                    .bind(&hash)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(found)
    }

    pub async fn add_named_key(
        &self,
        seller: &SellerId,
        key: &str,
        name: &str,
        now: Millis,
    ) -> Result<Option<String>, sqlx::Error> {
        add_named_key(&self.pool, seller, key, name, now).await
    }

    pub async fn keys(&self, seller: &SellerId) -> Result<Vec<KeyInfo>, sqlx::Error> {
        keys(&self.pool, seller).await
    }

    pub async fn end_key(&self, seller: &SellerId, id: &str, at: Millis, now: Millis) -> Result<bool, sqlx::Error> {
        end_key(&self.pool, seller, id, at, now).await
    }

    /// What seals sellers' secrets at rest (a CRM's API key, say).
    pub fn vault(&self) -> &Vault {
        &self.vault
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
