//! The console's people: accounts of persons (email, Argon2id password),
//! their membership of seller accounts with a role, one-time email links
//! (sign-in, invitation, an account's first owner), browser sessions with
//! their CSRF tokens, and sign-in lockout.
//!
//! Tokens (session cookies, links) carry ~238 random bits and are stored as
//! their SHA-256 only, like API keys. Passwords are hashed with Argon2id
//! (the `argon2` crate's defaults: 19 MiB, 2 passes) on a blocking thread.
//! Failed sign-ins are counted per email whether or not anyone has it, and
//! an unknown email costs a hash like a known one, so neither the answers
//! nor their timing tell which addresses have accounts.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use streams::clock::Millis;
use streams::ids::{random_token, SellerId};
use widget::Locale;

/// What a member may do in a seller's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: members, keys, banks, settings.
    Owner,
    /// The catalog, orders, refunds, webhooks, the shop's buyer-facing settings.
    Manager,
    /// Runs streams: lots, pins, offers, notes, moderation.
    Host,
    /// Moderates the chat; reads the streams.
    Moderator,
}

/// Every role, most powerful first.
pub const ROLES: &[Role] = &[Role::Owner, Role::Manager, Role::Host, Role::Moderator];

impl Role {
    pub fn parse(word: &str) -> Option<Role> {
        ROLES.iter().copied().find(|r| r.as_str() == word)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Host => "host",
            Role::Moderator => "moderator",
        }
    }

    /// Whether this role may act in `area` (`write`: change, not only read).
    pub fn allows(self, area: Area, write: bool) -> bool {
        use Area::*;
        match self {
            Role::Owner => true,
            Role::Manager => {
                matches!(area, Live | Orders | Refunds | Webhooks | Shop | Moderation) || (area == Settings && !write)
            }
            Role::Host => matches!(area, Live | Moderation),
            Role::Moderator => area == Moderation || (area == Live && !write),
        }
    }
}

/// What an action touches, for the roles: each seller API operation and
/// each console page belongs to one ([`area_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Area {
    /// Streams, lots, pins, offers, notes.
    Live,
    /// The chat: messages, time-outs, bans.
    Moderation,
    /// The order book, checkout sessions, fulfilment, committing holds.
    Orders,
    Refunds,
    Webhooks,
    /// What buyers see of the shop: checkout details, email templates,
    /// widget origins.
    Shop,
    /// The seller's settings (reading them is a manager's too).
    Settings,
    /// API keys, the widget secret, viewer tokens.
    Keys,
    /// Bank accounts.
    Banks,
    /// Connections to other systems (RetailCRM).
    Integrations,
    /// Members and invitations.
    Team,
}

/// The area of a seller API operation, by its method and route pattern
/// (`/v1/orders/{id}/refunds`); `None` for one no rule names (refused to
/// everyone but owners; a test checks every documented one has a rule).
pub fn area_of(path: &str) -> Option<Area> {
    let rest = path.strip_prefix("/v1/")?;
    let first = rest.split('/').next().unwrap_or("");
    Some(match first {
        _ if rest.ends_with("/refunds") => Area::Refunds,
        _ if rest.ends_with("/checkout-settings") => Area::Shop,
        _ if rest.contains("/holds/") => Area::Orders,
        "streams" | "lots" | "offers" => Area::Live,
        "orders" => Area::Orders,
        "checkout" if rest.starts_with("checkout/sessions") => Area::Orders,
        "checkout-settings" | "mail-templates" | "widget-origins" => Area::Shop,
        "webhook-endpoints" => Area::Webhooks,
        "settings" => Area::Settings,
        "api-keys" | "widget-secret" | "viewer-tokens" => Area::Keys,
        "acquirers" => Area::Banks,
        "integrations" => Area::Integrations,
        "team" => Area::Team,
        _ => return None,
    })
}

/// A person as the console knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub name: String,
    pub locale: Locale,
    pub has_password: bool,
}

/// A member of an account.
#[derive(Debug, Clone)]
pub struct Member {
    pub person: Person,
    pub role: Role,
    pub since: Millis,
}

/// An account a person belongs to.
#[derive(Debug, Clone)]
pub struct Membership {
    pub account: SellerId,
    pub name: String,
    pub role: Role,
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub person: Person,
    /// Sent with every form and every call that changes something.
    pub csrf: String,
    /// The account the console acts in, and the member's role there.
    pub account: Option<(SellerId, Role)>,
    pub live: bool,
}

/// What a one-time link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPurpose {
    SignIn,
    /// Join `account` with `role`.
    Invite {
        account: SellerId,
        role: Role,
    },
    /// Become `account`'s first owner.
    Owner {
        account: SellerId,
    },
}

/// A one-time link, read.
#[derive(Debug, Clone)]
pub struct Link {
    pub purpose: LinkPurpose,
    pub email: Option<String>,
}

/// How a password sign-in went.
#[derive(Debug, Clone)]
pub enum SignIn {
    Ok(Person),
    /// Wrong email or password (the same answer for both).
    Refused,
    /// Too many failures in a row: refused until then, whatever the password.
    Locked {
        until: Millis,
    },
}

/// Failures in a row that lock an email, and for how long.
pub const MAX_FAILURES: i64 = 5;
pub const LOCK_MS: Millis = 15 * 60_000;
/// How long a session lasts without use, and at most.
pub const SESSION_IDLE_MS: Millis = 7 * 24 * 3_600_000;
pub const SESSION_MAX_MS: Millis = 30 * 24 * 3_600_000;
/// How long links last: a sign-in a quarter of an hour, an invitation or an
/// owner's first link a week.
pub const SIGNIN_LINK_MS: Millis = 15 * 60_000;
pub const INVITE_LINK_MS: Millis = 7 * 24 * 3_600_000;
/// Password length bounds (characters).
pub const PASSWORD_MIN: usize = 10;
pub const PASSWORD_MAX: usize = 256;

fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An email as stored: trimmed, lower-case, if it is one.
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = raw.trim().to_lowercase();
    (e.len() <= 254 && payments::checkout::email_ok(&e)).then_some(e)
}

/// Why a password is refused, if it is.
pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Some(format!("at least {PASSWORD_MIN} characters"));
    }
    if n > PASSWORD_MAX {
        return Some(format!("at most {PASSWORD_MAX} characters"));
    }
    None
}

/// The Argon2id PHC string of a password (on a blocking thread).
async fn hash_password(password: &str) -> Result<String, sqlx::Error> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| sqlx::Error::Protocol(format!("hashing stopped: {e}")))?
    .map_err(|e| sqlx::Error::Protocol(format!("hashing failed: {e}")))
}

/// Whether `password` matches the PHC string (on a blocking thread). A
/// string that does not parse matches nothing.
async fn verify_password(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of nothing anyone knows, verified against for an unknown email
/// so a refusal costs the same either way.
const DECOY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$ZGVjb3lkZWNveWRlY295ZGVjb3lkZWNveWRlY295";

/// People, members, links and sessions over one pool.
#[derive(Clone)]
pub struct People {
    pool: AnyPool,
}

fn person_from(row: &sqlx::any::AnyRow) -> Result<Person, sqlx::Error> {
    Ok(Person {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        locale: Locale::parse(&row.try_get::<String, _>("locale")?).unwrap_or_default(),
        has_password: row.try_get::<Option<String>, _>("password_hash")?.is_some(),
    })
}

impl People {
    pub fn new(pool: AnyPool) -> Self {
        People { pool }
    }

    pub async fn by_email(&self, email: &str) -> Result<Option<Person>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM people WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(person_from).transpose()
    }

    pub async fn by_id(&self, id: &str) -> Result<Option<Person>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM people WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(person_from).transpose()
    }

    /// The person with `email`, made (without a password) if there is none.
    pub async fn find_or_create(
        &self,
        email: &str,
        name: &str,
        locale: Locale,
        now: Millis,
    ) -> Result<Person, sqlx::Error> {
        if let Some(p) = self.by_email(email).await? {
            return Ok(p);
        }
        sqlx::query(
            "INSERT INTO people (id, email, name, locale, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(format!("per_{}", random_token(24)))
        .bind(email)
        .bind(name)
        .bind(locale.tag())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.by_email(email)
            .await?
            .ok_or_else(|| sqlx::Error::Protocol("the person just made is gone".into()))
    }

    pub async fn set_password(&self, person: &str, password: &str) -> Result<(), sqlx::Error> {
        let phc = hash_password(password).await?;
        sqlx::query("UPDATE people SET password_hash = $1 WHERE id = $2")
            .bind(phc)
            .bind(person)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_profile(&self, person: &str, name: &str, locale: Locale) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE people SET name = $1, locale = $2 WHERE id = $3")
            .bind(name)
            .bind(locale.tag())
            .bind(person)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A password sign-in, counted against the email's lockout.
    pub async fn sign_in(&self, email: &str, password: &str, now: Millis) -> Result<SignIn, sqlx::Error> {
        let locked: Option<i64> = sqlx::query_scalar("SELECT locked_until FROM signin_failures WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(until) = locked.filter(|u| *u > now) {
            return Ok(SignIn::Locked { until });
        }
        let row = sqlx::query("SELECT * FROM people WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        let phc = row
            .as_ref()
            .map(|r| r.try_get::<Option<String>, _>("password_hash"))
            .transpose()?
            .flatten();
        let good = verify_password(password, phc.as_deref().unwrap_or(DECOY_PHC)).await && phc.is_some();
        if good {
            sqlx::query("DELETE FROM signin_failures WHERE email = $1")
                .bind(email)
                .execute(&self.pool)
                .await?;
            if let Some(r) = &row {
                return Ok(SignIn::Ok(person_from(r)?));
            }
        }
        // One more failure in a row; the fifth locks.
        sqlx::query(
            "INSERT INTO signin_failures (email, failures, last_at, locked_until) VALUES ($1, 1, $2, 0) \
             ON CONFLICT (email) DO UPDATE SET failures = signin_failures.failures + 1, last_at = $2",
        )
        .bind(email)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let failures: i64 = sqlx::query_scalar("SELECT failures FROM signin_failures WHERE email = $1")
            .bind(email)
            .fetch_one(&self.pool)
            .await?;
        if failures >= MAX_FAILURES {
            let until = now + LOCK_MS;
            sqlx::query("UPDATE signin_failures SET failures = 0, locked_until = $1 WHERE email = $2")
                .bind(until)
                .bind(email)
                .execute(&self.pool)
                .await?;
            return Ok(SignIn::Locked { until });
        }
        Ok(SignIn::Refused)
    }

    /// A seller account's name.
    pub async fn shop_name(&self, account: &SellerId) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT name FROM sellers WHERE id = $1")
            .bind(account.as_str())
            .fetch_optional(&self.pool)
            .await
    }

    /// The accounts a person belongs to, by name.
    pub async fn memberships(&self, person: &str) -> Result<Vec<Membership>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT m.account_id, m.role, s.name FROM members m JOIN sellers s ON s.id = m.account_id \
             WHERE m.person_id = $1 ORDER BY s.name, m.account_id",
        )
        .bind(person)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let (Ok(account), Some(role)) = (
                SellerId::parse(&r.try_get::<String, _>("account_id")?),
                Role::parse(&r.try_get::<String, _>("role")?),
            ) else {
                continue;
            };
            out.push(Membership {
                account,
                name: r.try_get("name")?,
                role,
            });
        }
        Ok(out)
    }

    pub async fn role(&self, account: &SellerId, person: &str) -> Result<Option<Role>, sqlx::Error> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM members WHERE account_id = $1 AND person_id = $2")
                .bind(account.as_str())
                .bind(person)
                .fetch_optional(&self.pool)
                .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }

    pub async fn members(&self, account: &SellerId) -> Result<Vec<Member>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT p.*, m.role, m.created_at AS since FROM members m JOIN people p ON p.id = m.person_id \
             WHERE m.account_id = $1 ORDER BY m.created_at, p.email",
        )
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let Some(role) = Role::parse(&r.try_get::<String, _>("role")?) else {
                continue;
            };
            out.push(Member {
                person: person_from(&r)?,
                role,
                since: r.try_get("since")?,
            });
        }
        Ok(out)
    }

    /// Makes `person` a member of `account` with `role` (a member already
    /// keeps the higher of the two roles).
    pub async fn join(&self, account: &SellerId, person: &str, role: Role, now: Millis) -> Result<(), sqlx::Error> {
        if let Some(had) = self.role(account, person).await? {
            if ROLES.iter().position(|r| *r == had) <= ROLES.iter().position(|r| *r == role) {
                return Ok(());
            }
            return self.set_role(account, person, role).await.map(|_| ());
        }
        sqlx::query(
            "INSERT INTO members (account_id, person_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, person_id) DO NOTHING",
        )
        .bind(account.as_str())
        .bind(person)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn owners(&self, account: &SellerId) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE account_id = $1 AND role = 'owner'")
            .bind(account.as_str())
            .fetch_one(&self.pool)
            .await
    }

    /// Changes a member's role; `false` when that would leave the account
    /// without an owner (or the person is not a member).
    pub async fn set_role(&self, account: &SellerId, person: &str, role: Role) -> Result<bool, sqlx::Error> {
        let Some(had) = self.role(account, person).await? else {
            return Ok(false);
        };
        if had == Role::Owner && role != Role::Owner && self.owners(account).await? <= 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE members SET role = $1 WHERE account_id = $2 AND person_id = $3")
            .bind(role.as_str())
            .bind(account.as_str())
            .bind(person)
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Removes a member, and their sessions acting in that account;
    /// `false` for the last owner (or a non-member).
    pub async fn remove(&self, account: &SellerId, person: &str) -> Result<bool, sqlx::Error> {
        let Some(had) = self.role(account, person).await? else {
            return Ok(false);
        };
        if had == Role::Owner && self.owners(account).await? <= 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM members WHERE account_id = $1 AND person_id = $2")
            .bind(account.as_str())
            .bind(person)
            .execute(&self.pool)
            .await?;
        sqlx::query("UPDATE console_sessions SET account_id = NULL WHERE person_id = $1 AND account_id = $2")
            .bind(person)
            .bind(account.as_str())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// A new one-time link; answers its token (shown once, in the link).
    pub async fn new_link(
        &self,
        purpose: &LinkPurpose,
        email: Option<&str>,
        invited_by: Option<&str>,
        now: Millis,
    ) -> Result<String, sqlx::Error> {
        let token = format!("lnk_{}", random_token(40));
        let (kind, account, role, ttl) = match purpose {
            LinkPurpose::SignIn => ("signin", None, None, SIGNIN_LINK_MS),
            LinkPurpose::Invite { account, role } => {
                ("invite", Some(account.as_str()), Some(role.as_str()), INVITE_LINK_MS)
            }
            LinkPurpose::Owner { account } => ("owner", Some(account.as_str()), Some("owner"), INVITE_LINK_MS),
        };
        sqlx::query(
            "INSERT INTO console_links (token_hash, purpose, email, account_id, role, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(hash_token(&token))
        .bind(kind)
        .bind(email)
        .bind(account)
        .bind(role)
        .bind(invited_by)
        .bind(now)
        .bind(now + ttl)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// A link that can still be used, read without using it.
    pub async fn peek_link(&self, token: &str, now: Millis) -> Result<Option<Link>, sqlx::Error> {
        if !token.starts_with("lnk_") || token.len() > 60 {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT * FROM console_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
                .bind(hash_token(token))
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let account = r
            .try_get::<Option<String>, _>("account_id")?
            .and_then(|a| SellerId::parse(&a).ok());
        let role = r.try_get::<Option<String>, _>("role")?.as_deref().and_then(Role::parse);
        let purpose = match (r.try_get::<String, _>("purpose")?.as_str(), account, role) {
            ("signin", _, _) => LinkPurpose::SignIn,
            ("invite", Some(account), Some(role)) => LinkPurpose::Invite { account, role },
            ("owner", Some(account), _) => LinkPurpose::Owner { account },
            _ => return Ok(None),
        };
        Ok(Some(Link {
            purpose,
            email: r.try_get("email")?,
        }))
    }

    /// Uses a link: once, whoever asks first (`None` for one used,
    /// expired or unknown).
    pub async fn take_link(&self, token: &str, now: Millis) -> Result<Option<Link>, sqlx::Error> {
        let Some(link) = self.peek_link(token, now).await? else {
            return Ok(None);
        };
        let taken = sqlx::query(
            "UPDATE console_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(hash_token(token))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        Ok(taken.then_some(link))
    }

    /// A new session for `person`, acting in their first account; answers
    /// the cookie's token.
    pub async fn start_session(
        &self,
        person: &str,
        account: Option<&SellerId>,
        now: Millis,
    ) -> Result<String, sqlx::Error> {
        let account = match account {
            Some(a) => Some(a.clone()),
            None => self.memberships(person).await?.into_iter().next().map(|m| m.account),
        };
        let token = format!("ses_{}", random_token(40));
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, person_id, csrf, account_id, livemode, created_at, seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $5, $6)",
        )
        .bind(hash_token(&token))
        .bind(person)
        .bind(random_token(32))
        .bind(account.as_ref().map(SellerId::as_str))
        .bind(now)
        .bind(now + SESSION_MAX_MS)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// The session of a cookie's token, if it is current (a use keeps it
    /// alive up to its end); the member's role is read afresh.
    pub async fn session(&self, token: &str, now: Millis) -> Result<Option<Session>, sqlx::Error> {
        if !token.starts_with("ses_") || token.len() > 60 {
            return Ok(None);
        }
        let hash = hash_token(token);
        let row =
            sqlx::query("SELECT * FROM console_sessions WHERE token_hash = $1 AND expires_at > $2 AND seen_at > $3")
                .bind(&hash)
                .bind(now)
                .bind(now - SESSION_IDLE_MS)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else { return Ok(None) };
        let seen: i64 = r.try_get("seen_at")?;
        if now - seen > 60_000 {
            sqlx::query("UPDATE console_sessions SET seen_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&hash)
                .execute(&self.pool)
                .await?;
        }
        let person_id: String = r.try_get("person_id")?;
        let Some(person) = self.by_id(&person_id).await? else {
            return Ok(None);
        };
        let account = match r
            .try_get::<Option<String>, _>("account_id")?
            .and_then(|a| SellerId::parse(&a).ok())
        {
            Some(a) => self.role(&a, &person.id).await?.map(|role| (a, role)),
            None => None,
        };
        Ok(Some(Session {
            person,
            csrf: r.try_get("csrf")?,
            account,
            live: r.try_get::<i64, _>("livemode")? != 0,
        }))
    }

    /// Switches a session's account or mode (the caller checked membership).
    pub async fn switch(&self, token: &str, account: &SellerId, live: bool) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE console_sessions SET account_id = $1, livemode = $2 WHERE token_hash = $3")
            .bind(account.as_str())
            .bind(i64::from(live))
            .bind(hash_token(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets what can no longer be used: sessions past their end or idle
    /// too long, links expired a day ago, failures older than a lock.
    pub async fn purge(&self, now: Millis) -> Result<u64, sqlx::Error> {
        let sessions = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR seen_at <= $2")
            .bind(now)
            .bind(now - SESSION_IDLE_MS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let links = sqlx::query("DELETE FROM console_links WHERE expires_at <= $1")
            .bind(now - 24 * 3_600_000)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let failures = sqlx::query("DELETE FROM signin_failures WHERE last_at <= $1 AND locked_until <= $2")
            .bind(now - LOCK_MS)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(sessions + links + failures)
    }

    /// Signs this browser out.
    pub async fn end_session(&self, token: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(hash_token(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Signs a person out everywhere.
    pub async fn end_all_sessions(&self, person: &str) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM console_sessions WHERE person_id = $1")
            .bind(person)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_its_areas_only() {
        use Area::*;
        let all = [
            Live,
            Moderation,
            Orders,
            Refunds,
            Webhooks,
            Shop,
            Settings,
            Keys,
            Banks,
            Integrations,
            Team,
        ];
        for area in all {
            assert!(Role::Owner.allows(area, true));
        }
        assert!(Role::Manager.allows(Refunds, true) && !Role::Manager.allows(Keys, false));
        assert!(Role::Manager.allows(Settings, false) && !Role::Manager.allows(Settings, true));
        assert!(Role::Host.allows(Live, true) && !Role::Host.allows(Orders, false));
        assert!(Role::Moderator.allows(Live, false) && !Role::Moderator.allows(Live, true));
        assert!(!Role::Moderator.allows(Refunds, true) && Role::Moderator.allows(Moderation, true));
        assert!(!Role::Manager.allows(Team, false) && !Role::Host.allows(Banks, false));
    }

    #[test]
    fn routes_fall_into_areas() {
        assert_eq!(area_of("/v1/orders/{id}/refunds"), Some(Area::Refunds));
        assert_eq!(area_of("/v1/orders/{id}/fulfilment"), Some(Area::Orders));
        assert_eq!(area_of("/v1/streams/{id}/checkout-settings"), Some(Area::Shop));
        assert_eq!(area_of("/v1/offers/{id}/holds/{hold}/commit"), Some(Area::Orders));
        assert_eq!(area_of("/v1/offers/{id}"), Some(Area::Live));
        assert_eq!(area_of("/v1/api-keys/{id}/rotate"), Some(Area::Keys));
        assert_eq!(area_of("/v1/nothing"), None);
        assert_eq!(area_of("/watch/{id}"), None);
    }

    #[test]
    fn emails_and_passwords_are_checked() {
        assert_eq!(
            normalize_email("  Anna@Shop.Example "),
            Some("anna@shop.example".into())
        );
        assert_eq!(normalize_email("anna"), None);
        assert!(password_problem("short").is_some());
        assert!(password_problem("long enough, surely").is_none());
        assert!(password_problem(&"x".repeat(300)).is_some());
        // The decoy is a real Argon2id hash: verifying against it costs
        // what a real one does.
        assert!(PasswordHash::new(DECOY_PHC).is_ok());
    }
}
