//! Sellers' accounts at acquiring banks: which banks, in which order, with
//! sealed credentials ([`crate::vault`]).

use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyPool, Row};

use crate::ids::random_body;
use crate::store::StoreError;
use crate::vault::{Vault, VaultError};

/// Banks a seller may connect.
pub const ACQUIRERS: &[&str] = &[
    crate::acquirers::tbank::ACQUIRER,
    crate::acquirers::cloudpayments::ACQUIRER,
    crate::acquirers::yookassa::ACQUIRER,
    crate::acquirers::stripe::ACQUIRER,
];

/// An account as the seller sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub id: String,
    pub acquirer: String,
    pub account: String,
    pub settings: Value,
    pub priority: i64,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("this bank account is already connected")]
    Taken,
    #[error("the stored secret does not open: {0}")]
    Sealed(#[from] VaultError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Store(StoreError::from(e))
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Account, StoreError> {
    let settings: String = row.try_get("settings")?;
    Ok(Account {
        id: row.try_get("id")?,
        acquirer: row.try_get("acquirer")?,
        account: row.try_get("account")?,
        settings: serde_json::from_str(&settings).map_err(|_| StoreError::Corrupt {
            column: "acquirer_accounts.settings",
            value: settings.chars().take(64).collect(),
        })?,
        priority: row.try_get("priority")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const COLS: &str = "id, acquirer, account, settings, priority, enabled, created_at, updated_at";

/// What connecting an account takes.
pub struct NewAccount<'a> {
    pub acquirer: &'a str,
    pub account: &'a str,
    pub secret: &'a str,
    pub settings: &'a Value,
    /// `None`: after the seller's last.
    pub priority: Option<i64>,
    pub enabled: bool,
}

pub async fn create(
    pool: &AnyPool,
    vault: &Vault,
    seller: &str,
    new: &NewAccount<'_>,
    now: i64,
) -> Result<Account, AccountError> {
    let id = format!("acq_{}", random_body());
    let priority = match new.priority {
        Some(p) => p,
        None => {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(priority) FROM acquirer_accounts WHERE seller_id = $1")
                    .bind(seller)
                    .fetch_one(pool)
                    .await?;
            last.map_or(1, |p| p + 1)
        }
    };
    let taken: Option<String> =
        sqlx::query_scalar("SELECT id FROM acquirer_accounts WHERE acquirer = $1 AND account = $2")
            .bind(new.acquirer)
            .bind(new.account)
            .fetch_optional(pool)
            .await?;
    if taken.is_some() {
        return Err(AccountError::Taken);
    }
    let inserted = sqlx::query(
        "INSERT INTO acquirer_accounts (id, seller_id, acquirer, account, secret, settings, priority, enabled, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(seller)
    .bind(new.acquirer)
    .bind(new.account)
    .bind(vault.seal(new.secret, &id))
    .bind(new.settings.to_string())
    .bind(priority)
    .bind(i64::from(new.enabled))
    .bind(now)
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => {}
        // Two at once for the same bank account: the other won.
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Err(AccountError::Taken),
        Err(e) => return Err(e.into()),
    }
    get(pool, seller, &id)
        .await?
        .ok_or(AccountError::Store(StoreError::Contention("acquirer_accounts")))
}

pub async fn get(pool: &AnyPool, seller: &str, id: &str) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM acquirer_accounts WHERE id = $1 AND seller_id = $2"
    ))
    .bind(id)
    .bind(seller)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The seller's accounts in the order they are tried.
pub async fn list(pool: &AnyPool, seller: &str) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM acquirer_accounts WHERE seller_id = $1 ORDER BY priority, created_at, id"
    ))
    .bind(seller)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// What a seller may change; `None` leaves it.
#[derive(Default)]
pub struct Change<'a> {
    pub secret: Option<&'a str>,
    pub settings: Option<&'a Value>,
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
}

pub async fn update(
    pool: &AnyPool,
    vault: &Vault,
    seller: &str,
    id: &str,
    change: &Change<'_>,
    now: i64,
) -> Result<Option<Account>, AccountError> {
    let Some(current) = get(pool, seller, id).await? else {
        return Ok(None);
    };
    let mut tx = pool.begin().await?;
    if let Some(secret) = change.secret {
        sqlx::query("UPDATE acquirer_accounts SET secret = $1 WHERE id = $2")
            .bind(vault.seal(secret, id))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE acquirer_accounts SET settings = $1, priority = $2, enabled = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(change.settings.unwrap_or(&current.settings).to_string())
    .bind(change.priority.unwrap_or(current.priority))
    .bind(i64::from(change.enabled.unwrap_or(current.enabled)))
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(get(pool, seller, id).await?)
}

pub async fn delete(pool: &AnyPool, seller: &str, id: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("DELETE FROM acquirer_accounts WHERE id = $1 AND seller_id = $2")
            .bind(id)
            .bind(seller)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// The sealed form of an account's secrets: the second (when there is one)
/// after a line break, which no secret contains (they are visible ASCII).
pub fn join_secret(secret: &str, webhook_secret: Option<&str>) -> String {
    match webhook_secret {
        Some(w) => format!("{secret}\n{w}"),
        None => secret.to_owned(),
    }
}

fn split_secret(opened: &str) -> (String, Option<String>) {
    match opened.split_once('\n') {
        Some((s, w)) => (s.to_owned(), Some(w.to_owned())),
        None => (opened.to_owned(), None),
    }
}

/// An account with its secret opened, for talking to the bank.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub account: Account,
    pub seller_id: String,
    pub secret: SecretString,
    /// A second secret some banks have (Stripe's webhook signing secret).
    pub webhook_secret: Option<SecretString>,
}

fn open_row(vault: &Vault, row: &sqlx::any::AnyRow) -> Result<Credentials, AccountError> {
    let account = from_row(row)?;
    let sealed: String = row.try_get("secret").map_err(StoreError::from)?;
    let opened = vault.open(&sealed, &account.id)?;
    let (secret, webhook_secret) = split_secret(&opened);
    Ok(Credentials {
        seller_id: row.try_get("seller_id").map_err(StoreError::from)?,
        account,
        secret: secret.into(),
        webhook_secret: webhook_secret.map(Into::into),
    })
}

/// The account a bank's notification names (`acquirer`, `account`).
pub async fn by_bank_account(
    pool: &AnyPool,
    vault: &Vault,
    acquirer: &str,
    account: &str,
) -> Result<Option<Credentials>, AccountError> {
    let row = sqlx::query(&format!(
        "SELECT {COLS}, secret, seller_id FROM acquirer_accounts WHERE acquirer = $1 AND account = $2"
    ))
    .bind(acquirer)
    .bind(account)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(|r| open_row(vault, r)).transpose()
}

/// One account of a seller with its secret opened (by id).
pub async fn credentials(
    pool: &AnyPool,
    vault: &Vault,
    seller: &str,
    id: &str,
) -> Result<Option<Credentials>, AccountError> {
    let row = sqlx::query(&format!(
        "SELECT {COLS}, secret, seller_id FROM acquirer_accounts WHERE id = $1 AND seller_id = $2"
    ))
    .bind(id)
    .bind(seller)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(|r| open_row(vault, r)).transpose()
}
