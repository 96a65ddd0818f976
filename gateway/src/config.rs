//! Configuration from `HAUL_*` environment variables, validated at start.
//!
//! [`VARIABLES`] is the one list of what can be set: `haul --help` prints it
//! and [`Config::from_vars`] reads exactly these. A bad value is one error
//! naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// One configurable variable: its name, default (as text) and meaning.
pub struct Variable {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "HAUL_LISTEN",
        default: "127.0.0.1:8080",
        help: "address:port the HTTP server listens on",
    },
    Variable {
        name: "HAUL_DATA_DIR",
        default: "./haul-data",
        help: "directory for the embedded database and generated secrets",
    },
    Variable {
        name: "HAUL_DATABASE_URL",
        default: "sqlite file in HAUL_DATA_DIR",
        help: "sqlite://PATH or postgres://USER@HOST/DB; any other scheme is refused",
    },
    Variable {
        name: "HAUL_REDIS_URL",
        default: "unset (in-process engines)",
        help: "redis://HOST:PORT[/DB]: stock holds shared by several nodes",
    },
    Variable {
        name: "HAUL_REDIS_PREFIX",
        default: "haul",
        help: "prefix of every Redis key Haul writes",
    },
    Variable {
        name: "HAUL_LOG_FORMAT",
        default: "text",
        help: "text or json",
    },
    Variable {
        name: "HAUL_LOG",
        default: "info",
        help: "log filter of targets and levels, e.g. info,gateway=debug",
    },
    Variable {
        name: "HAUL_TOKEN_SECRET",
        default: "generated into HAUL_DATA_DIR",
        help: "HS256 secret for viewer tokens (at least 32 bytes); set it on every node",
    },
    Variable {
        name: "HAUL_SANDBOX_SECRET",
        default: "generated into HAUL_DATA_DIR",
        help: "HMAC secret of the sandbox acquirer's callbacks (at least 32 bytes); set it on every node",
    },
    Variable {
        name: "HAUL_CREDENTIALS_KEY",
        default: "generated into HAUL_DATA_DIR",
        help: "key that seals sellers' acquirer credentials at rest (at least 32 bytes); set it on every node",
    },
    Variable {
        name: "HAUL_TBANK_URL",
        default: "https://securepay.tinkoff.ru/v2",
        help: "the T-Bank Acquiring API's address",
    },
    Variable {
        name: "HAUL_CLOUDPAYMENTS_URL",
        default: "https://api.cloudpayments.ru",
        help: "the CloudPayments API's address",
    },
    Variable {
        name: "HAUL_YOOKASSA_URL",
        default: "https://api.yookassa.ru/v3",
        help: "the YooKassa API's address",
    },
    Variable {
        name: "HAUL_STRIPE_URL",
        default: "https://api.stripe.com",
        help: "the Stripe API's address",
    },
    Variable {
        name: "HAUL_ACQUIRER_TIMEOUT_MS",
        default: "10000",
        help: "how long one call to a bank may take before its result counts as unknown (100 to 60000 ms)",
    },
    Variable {
        name: "HAUL_PUBLIC_URL",
        default: "http://HAUL_LISTEN",
        help: "the address buyers' browsers and acquirers reach this node at (http or https, no path)",
    },
    Variable {
        name: "HAUL_SANDBOX_CHAOS",
        default: "false",
        help: "the sandbox acquirer sends every callback twice and out of order (to exercise exactly-once)",
    },
    Variable {
        name: "HAUL_SMTP_URL",
        default: "unset (emails to buyers are written to HAUL_DATA_DIR/mail)",
        help: "smtp://[USER:PASSWORD@]HOST[:PORT] of the mail relay for buyers' emails; plain SMTP, so a password only to a relay on this machine",
    },
    Variable {
        name: "HAUL_MAIL_FROM",
        default: "Haul <no-reply@localhost>",
        help: "the From of buyers' emails",
    },
    Variable {
        name: "HAUL_WEBHOOKS_ALLOW_PRIVATE",
        default: "false",
        help: "allow seller webhooks to private and loopback addresses (development only)",
    },
    Variable {
        name: "HAUL_DEMO_API_KEY",
        default: "random, printed once",
        help: "API key of the demo seller (embedded setup only)",
    },
    Variable {
        name: "HAUL_RATE_BUYER",
        default: "10/s",
        help: "reserves per buyer: N/s, N/m or off",
    },
    Variable {
        name: "HAUL_RATE_ADDR",
        default: "100/s",
        help: "buyer requests per client address: N/s, N/m or off",
    },
    Variable {
        name: "HAUL_RATE_SIGNIN",
        default: "10/m",
        help: "console sign-in attempts and invitations per client address: N/s, N/m or off",
    },
    Variable {
        name: "HAUL_TRUST_FORWARDED_FOR",
        default: "false",
        help: "take the client address from X-Forwarded-For (behind a proxy you run)",
    },
    Variable {
        name: "HAUL_HISTORY_SIZE",
        default: "200",
        help: "publications kept per channel for recovery after a reconnect (10 to 100000)",
    },
    Variable {
        name: "HAUL_HISTORY_TTL",
        default: "300",
        help: "seconds a publication stays recoverable (1 to 86400)",
    },
    Variable {
        name: "HAUL_VIEWERS_PER_ADDR",
        default: "1000",
        help: "open viewer connections allowed from one client address (1 to 1000000)",
    },
    Variable {
        name: "HAUL_DB_TIMEOUT_MS",
        default: "1000",
        help: "longest a request waits for a PostgreSQL connection (100 to 60000); then 503",
    },
    Variable {
        name: "HAUL_REDIS_TIMEOUT_MS",
        default: "1000",
        help: "a Redis connection attempt or command gives up after this (50 to 60000); stock operations then answer 503",
    },
    Variable {
        name: "HAUL_REDIS_RECONNECT_MS",
        default: "100",
        help: "longest wait before the realtime bus tries a lost Redis subscription again (1 to 5000); commands reconnect on their own, at once",
    },
    Variable {
        name: "HAUL_HOLDS_PER_ADDR",
        default: "10",
        help: "units one client address (an IPv6 /64) may hold at once in one offer, whatever buyer ids it uses (1 to 100000, or off)",
    },
    Variable {
        name: "HAUL_MAX_BODY_BYTES",
        default: "65536",
        help: "largest request body accepted",
    },
];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A rate: `burst` requests at once, refilled at `burst` per `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: NonZeroU32,
    pub per_seconds: u32,
}

/// A mail relay: plain SMTP (a password only to one on this machine).
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, SecretString)>,
}

fn smtp_of(url: &str) -> Result<Smtp, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a URL".to_owned())?;
    if parsed.scheme() != "smtp" {
        return Err(format!("unknown scheme {:?}; use smtp://", parsed.scheme()));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("no host")?.to_owned();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let local = bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let credentials = match (parsed.username(), parsed.password()) {
        ("", None) => None,
        (_, _) if !local => {
            return Err("a password over plain SMTP would cross the network unencrypted: relay through a mail server on this machine".into())
        }
        (user, pass) => Some((user.to_owned(), SecretString::from(pass.unwrap_or("").to_owned()))),
    };
    Ok(Smtp {
        host: bare.to_owned(),
        port: parsed.port().unwrap_or(25),
        credentials,
    })
}

/// Everything `haul` needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// May carry a password, so it is secret.
    pub database_url: SecretString,
    pub redis_url: Option<SecretString>,
    pub redis_prefix: String,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub token_secret: Option<SecretString>,
    pub sandbox_secret: Option<SecretString>,
    /// Seals sellers' acquirer credentials at rest.
    pub credentials_key: Option<SecretString>,
    /// The banks' API base URLs (their production addresses unless set).
    pub tbank_url: String,
    pub cloudpayments_url: String,
    pub yookassa_url: String,
    pub stripe_url: String,
    /// How long one call to a bank may take.
    pub acquirer_timeout: std::time::Duration,
    /// Where browsers and acquirers reach this node, without a trailing slash
    /// (unset: the address the node listens on).
    pub public_url: Option<String>,
    pub sandbox_chaos: bool,
    pub webhooks_allow_private: bool,
    /// The mail relay for buyers' emails (none: written to files).
    pub smtp: Option<Smtp>,
    pub mail_from: String,
    pub demo_api_key: Option<SecretString>,
    pub rate_buyer: Option<Rate>,
    pub rate_addr: Option<Rate>,
    /// Console sign-in attempts (passwords, email links) per client address.
    pub rate_signin: Option<Rate>,
    pub trust_forwarded_for: bool,
    pub max_body_bytes: usize,
    /// Publications kept per channel for recovery.
    pub history_size: usize,
    /// How long a publication stays recoverable, in ms.
    pub history_ttl_ms: i64,
    /// Open viewer connections allowed from one address.
    pub viewers_per_addr: u32,
    /// Units one address may hold at once in one offer (`None`: no cap).
    pub holds_per_addr: Option<i64>,
    /// How Redis connections time out and reconnect.
    pub redis_policy: streams::inventory::RedisPolicy,
    /// Longest a request waits for a PostgreSQL connection.
    pub db_timeout: std::time::Duration,
    /// Create the demo seller and stream (embedded setup, unless `--no-demo`).
    pub demo: bool,
}

/// A variable with a value Haul cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

fn parse_rate(var: &'static str, s: &str) -> Result<Option<Rate>, ConfigError> {
    if s == "off" {
        return Ok(None);
    }
    let bad = || err(var, format!("expected N/s, N/m or off, got {s:?}"));
    let (n, unit) = s.split_once('/').ok_or_else(bad)?;
    let per_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    let burst: u32 = n.parse().map_err(|_| bad())?;
    let burst = NonZeroU32::new(burst).ok_or_else(bad)?;
    Ok(Some(Rate { burst, per_seconds }))
}

fn is_known_db_scheme(url: &str) -> bool {
    url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars().filter(|(k, _)| k.starts_with("HAUL_")).collect())
    }

    /// Reads the configuration from `vars`. Unknown `HAUL_*` names are refused,
    /// so a typo never silently falls back to a default.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        for name in vars.keys() {
            if name.starts_with("HAUL_TEST_") {
                continue;
            }
            if !VARIABLES.iter().any(|v| v.name == name) {
                return Err(ConfigError {
                    var: "HAUL_*",
                    message: format!("unknown variable {name}; `haul --help` lists them"),
                });
            }
        }
        let get = |name: &str| vars.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());

        let listen = get("HAUL_LISTEN").unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| err("HAUL_LISTEN", format!("expected address:port, got {listen:?}")))?;

        let data_dir = PathBuf::from(get("HAUL_DATA_DIR").unwrap_or("./haul-data"));

        let (database_url, embedded) = match get("HAUL_DATABASE_URL") {
            Some(url) if is_known_db_scheme(url) => (url.to_owned(), url.starts_with("sqlite:")),
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or("");
                return Err(err(
                    "HAUL_DATABASE_URL",
                    format!("unknown scheme {scheme:?}; use sqlite: or postgres://"),
                ));
            }
            None => (format!("sqlite://{}/haul.db", data_dir.display()), true),
        };

        let redis_url = match get("HAUL_REDIS_URL") {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(SecretString::from(url.to_owned()))
            }
            Some(url) => {
                let scheme = url.split(':').next().unwrap_or("");
                return Err(err(
                    "HAUL_REDIS_URL",
                    format!("unknown scheme {scheme:?}; use redis://"),
                ));
            }
            None => None,
        };

        let redis_prefix = get("HAUL_REDIS_PREFIX").unwrap_or("haul").to_owned();
        if redis_prefix.len() > 64
            || !redis_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':')
        {
            return Err(err(
                "HAUL_REDIS_PREFIX",
                "1 to 64 characters of A-Z, a-z, 0-9, '_', '-', ':'",
            ));
        }

        let log_format = match get("HAUL_LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(err("HAUL_LOG_FORMAT", format!("expected text or json, got {other:?}"))),
        };
        let log_filter = get("HAUL_LOG").unwrap_or("info").to_owned();
        // Targets and levels only: the filter parser panics on some
        // non-ASCII input, and span and field filters (`[…]`, `{…}`, regular
        // expressions) can take it minutes and gigabytes to build (both
        // found by fuzzing).
        if log_filter.len() > 1000 {
            return Err(err("HAUL_LOG", "a log filter is at most 1000 characters"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_:,=.-".contains(c);
        if let Some(c) = log_filter.chars().find(|c| !allowed(*c)) {
            return Err(err(
                "HAUL_LOG",
                format!("{c:?} cannot be in a log filter: targets and levels only, e.g. info,gateway=debug"),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_filter) {
            return Err(err(
                "HAUL_LOG",
                format!("not a log filter ({e}), e.g. info,gateway=debug"),
            ));
        }

        let token_secret = match get("HAUL_TOKEN_SECRET") {
            Some(s) if s.len() >= 32 => Some(SecretString::from(s.to_owned())),
            Some(_) => return Err(err("HAUL_TOKEN_SECRET", "must be at least 32 bytes")),
            None => None,
        };

        let sandbox_secret = match get("HAUL_SANDBOX_SECRET") {
            Some(s) if s.len() >= 32 => Some(SecretString::from(s.to_owned())),
            Some(_) => return Err(err("HAUL_SANDBOX_SECRET", "must be at least 32 bytes")),
            None => None,
        };

        let credentials_key = match get("HAUL_CREDENTIALS_KEY") {
            Some(s) if s.len() >= 32 => Some(SecretString::from(s.to_owned())),
            Some(_) => return Err(err("HAUL_CREDENTIALS_KEY", "must be at least 32 bytes")),
            None => None,
        };

        let bank_url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            match get(name) {
                None => Ok(default.to_owned()),
                Some(u) if (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 200 => {
                    Ok(u.trim_end_matches('/').to_owned())
                }
                Some(u) => Err(err(name, format!("expected an http(s) URL, got {u:?}"))),
            }
        };
        use payments::acquirers::{cloudpayments, stripe, tbank, yookassa};
        let tbank_url = bank_url("HAUL_TBANK_URL", tbank::DEFAULT_BASE_URL)?;
        let cloudpayments_url = bank_url("HAUL_CLOUDPAYMENTS_URL", cloudpayments::DEFAULT_BASE_URL)?;
        let yookassa_url = bank_url("HAUL_YOOKASSA_URL", yookassa::DEFAULT_BASE_URL)?;
        let stripe_url = bank_url("HAUL_STRIPE_URL", stripe::DEFAULT_BASE_URL)?;

        let public_url = match get("HAUL_PUBLIC_URL") {
            Some(u) if (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 200 => {
                Some(u.trim_end_matches('/').to_owned())
            }
            Some(u) => {
                return Err(err(
                    "HAUL_PUBLIC_URL",
                    format!("expected http(s)://HOST[:PORT], got {u:?}"),
                ))
            }
            None => None,
        };
        let sandbox_chaos = match get("HAUL_SANDBOX_CHAOS").unwrap_or("false") {
            "true" | "1" | "on" => true,
            "false" | "0" | "off" => false,
            other => {
                return Err(err(
                    "HAUL_SANDBOX_CHAOS",
                    format!("expected true or false, got {other:?}"),
                ))
            }
        };

        let smtp = get("HAUL_SMTP_URL")
            .map(|u| smtp_of(u).map_err(|m| err("HAUL_SMTP_URL", m)))
            .transpose()?;
        let mail_from = get("HAUL_MAIL_FROM").unwrap_or("Haul <no-reply@localhost>").to_owned();
        if !mail_from.contains('@') || mail_from.chars().any(char::is_control) || mail_from.len() > 200 {
            return Err(err(
                "HAUL_MAIL_FROM",
                "expected an address, like Shop <orders@shop.example>",
            ));
        }

        let webhooks_allow_private = match get("HAUL_WEBHOOKS_ALLOW_PRIVATE").unwrap_or("false") {
            "true" | "1" | "on" => true,
            "false" | "0" | "off" => false,
            other => {
                return Err(err(
                    "HAUL_WEBHOOKS_ALLOW_PRIVATE",
                    format!("expected true or false, got {other:?}"),
                ))
            }
        };

        let demo_api_key = match get("HAUL_DEMO_API_KEY") {
            Some(k) if k.starts_with(crate::sellers::Mode::Live.key_prefix()) => {
                return Err(err(
                    "HAUL_DEMO_API_KEY",
                    "the demo lives in test mode: give an hk_test_ key, not an hk_live_ one",
                ))
            }
            Some(k) if crate::sellers::valid_key_format(k) => Some(SecretString::from(k.to_owned())),
            Some(_) => {
                return Err(err(
                    "HAUL_DEMO_API_KEY",
                    "must be 'hk_test_' followed by 20 to 80 characters of A-Z, a-z, 0-9",
                ))
            }
            None => None,
        };

        let rate_buyer = parse_rate("HAUL_RATE_BUYER", get("HAUL_RATE_BUYER").unwrap_or("10/s"))?;
        let rate_addr = parse_rate("HAUL_RATE_ADDR", get("HAUL_RATE_ADDR").unwrap_or("100/s"))?;
        let rate_signin = parse_rate("HAUL_RATE_SIGNIN", get("HAUL_RATE_SIGNIN").unwrap_or("10/m"))?;

        let trust_forwarded_for = match get("HAUL_TRUST_FORWARDED_FOR").unwrap_or("false") {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(err(
                    "HAUL_TRUST_FORWARDED_FOR",
                    format!("expected true or false, got {other:?}"),
                ))
            }
        };

        let max_body = get("HAUL_MAX_BODY_BYTES").unwrap_or("65536");
        let max_body_bytes: usize = max_body
            .parse()
            .ok()
            .filter(|n| (1024..=16 * 1024 * 1024).contains(n))
            .ok_or_else(|| {
                err(
                    "HAUL_MAX_BODY_BYTES",
                    format!("expected 1024 to 16777216, got {max_body:?}"),
                )
            })?;

        let number = |var: &'static str, default: &'static str, lo: u64, hi: u64| -> Result<u64, ConfigError> {
            let raw = get(var).unwrap_or(default);
            raw.parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| err(var, format!("expected {lo} to {hi}, got {raw:?}")))
        };
        let history_size = number("HAUL_HISTORY_SIZE", "200", 10, 100_000)? as usize;
        let history_ttl_ms = number("HAUL_HISTORY_TTL", "300", 1, 86_400)? as i64 * 1000;
        let viewers_per_addr = number("HAUL_VIEWERS_PER_ADDR", "1000", 1, 1_000_000)? as u32;
        let db_timeout = std::time::Duration::from_millis(number("HAUL_DB_TIMEOUT_MS", "1000", 100, 60_000)?);
        let redis_policy = streams::inventory::RedisPolicy {
            timeout: std::time::Duration::from_millis(number("HAUL_REDIS_TIMEOUT_MS", "1000", 50, 60_000)?),
            reconnect_max: std::time::Duration::from_millis(number("HAUL_REDIS_RECONNECT_MS", "100", 1, 5_000)?),
        };
        let holds_per_addr = match get("HAUL_HOLDS_PER_ADDR") {
            Some("off") => None,
            _ => Some(number("HAUL_HOLDS_PER_ADDR", "10", 1, 100_000)? as i64),
        };
        let acquirer_timeout =
            std::time::Duration::from_millis(number("HAUL_ACQUIRER_TIMEOUT_MS", "10000", 100, 60_000)?);

        Ok(Config {
            listen,
            data_dir,
            database_url: SecretString::from(database_url),
            redis_url,
            redis_prefix,
            log_format,
            log_filter,
            token_secret,
            sandbox_secret,
            credentials_key,
            tbank_url,
            cloudpayments_url,
            yookassa_url,
            stripe_url,
            acquirer_timeout,
            public_url,
            sandbox_chaos,
            webhooks_allow_private,
            smtp,
            mail_from,
            demo_api_key,
            rate_buyer,
            rate_addr,
            rate_signin,
            trust_forwarded_for,
            max_body_bytes,
            history_size,
            history_ttl_ms,
            viewers_per_addr,
            holds_per_addr,
            redis_policy,
            db_timeout,
            demo: embedded,
        })
    }

    /// Is the durable store the embedded SQLite file?
    pub fn is_embedded_db(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }

    /// The `--help` text.
    pub fn help() -> String {
        let mut out = String::from(
            "haul — live-stream shopping backend\n\n\
             Usage:\n  haul [serve] [--no-demo]        run the server\n  \
             haul seller create --name NAME  create a seller; print its live and test API keys (shown once)\n  \
             haul seller key --seller ID --mode live|test\n                                 \
             a new API key for one mode of a seller (shown once)\n  \
             haul --help | --version\n\nEnvironment:\n",
        );
        for v in VARIABLES {
            out.push_str(&format!("  {:<26} {} (default: {})\n", v.name, v.help, v.default));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_configuration_means_embedded_defaults() {
        let c = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(c.is_embedded_db());
        assert!(c.demo);
        assert!(c.redis_url.is_none());
        assert_eq!(c.rate_buyer.unwrap().burst.get(), 10);
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (name, value) in [
            ("HAUL_LISTEN", "nope"),
            ("HAUL_DATABASE_URL", "mysql://x"),
            ("HAUL_REDIS_URL", "http://x"),
            ("HAUL_LOG_FORMAT", "xml"),
            ("HAUL_TOKEN_SECRET", "short"),
            ("HAUL_SANDBOX_SECRET", "short"),
            ("HAUL_PUBLIC_URL", "ftp://x"),
            ("HAUL_SANDBOX_CHAOS", "maybe"),
            ("HAUL_DEMO_API_KEY", "abc"),
            ("HAUL_DEMO_API_KEY", "hk_live_0123456789abcdefghij"),
            ("HAUL_RATE_BUYER", "10/d"),
            ("HAUL_RATE_ADDR", "0/s"),
            ("HAUL_MAX_BODY_BYTES", "10"),
            ("HAUL_TRUST_FORWARDED_FOR", "maybe"),
            ("HAUL_REDIS_PREFIX", "a b"),
            ("HAUL_VIEWERS_PER_ADDR", "0"),
            ("HAUL_HOLDS_PER_ADDR", "0"),
            ("HAUL_REDIS_TIMEOUT_MS", "10"),
            ("HAUL_DB_TIMEOUT_MS", "50"),
            ("HAUL_REDIS_RECONNECT_MS", "0"),
            ("HAUL_HOLDS_PER_ADDR", "many"),
            ("HAUL_HISTORY_SIZE", "5"),
            ("HAUL_LOG", "info,[{x=nope"),
            ("HAUL_LOG", "info,gateway[span{field=/a+b*/}]=debug"),
            // Found by fuzzing: the filter parser panicked on non-ASCII.
            ("HAUL_LOG", "info,a[{b=p\u{e6}/}]=debug"),
        ] {
            let e = Config::from_vars(vars(&[(name, value)])).unwrap_err();
            assert_eq!(e.var, name, "{name}={value} gave {e}");
        }
    }

    #[test]
    fn unknown_haul_variables_are_refused() {
        let e = Config::from_vars(vars(&[("HAUL_LISTNE", "1")])).unwrap_err();
        assert!(e.message.contains("HAUL_LISTNE"));
    }

    #[test]
    fn postgres_turns_the_demo_off_and_secrets_do_not_print() {
        let c = Config::from_vars(vars(&[("HAUL_DATABASE_URL", "postgres://u:pw@h/db")])).unwrap();
        assert!(!c.demo);
        assert!(!format!("{c:?}").contains("pw"));
    }
}
