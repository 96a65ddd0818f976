//! Opening the durable store and applying its migrations (`migrations/` at
//! the workspace root, one set per database). The gateway opens one pool and
//! hands it to every domain.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unknown database URL scheme; use sqlite: or postgres://")]
    UnknownScheme,
    #[error("could not create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("could not apply migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Connects to `url`, creating an SQLite file (and its directory) if needed,
/// and applies the migrations of that database.
/// Makes the database file, readable by its owner only, before SQLite opens
/// it (its journal and WAL files take the same permissions); an existing
/// file is made so too. `:memory:` and the like are left alone.
fn private_file(path: &str) -> std::io::Result<()> {
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    options.open(path)?;
    Ok(())
}

pub async fn connect(url: &str) -> Result<(AnyPool, DbKind), DbError> {
    connect_with(url, Duration::from_secs(10)).await
}

/// [`connect`], where a request waits at most `wait` for a PostgreSQL
/// connection: while the server is away (restarting, cut off) requests get
/// a clear error that soon instead of queueing. (The embedded SQLite file
/// has no outage; its writers queue up to 10 s, as before.)
pub async fn connect_with(url: &str, wait: Duration) -> Result<(AnyPool, DbKind), DbError> {
    sqlx::any::install_default_drivers();
    let kind = if url.starts_with("sqlite:") {
        DbKind::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        DbKind::Postgres
    } else {
        return Err(DbError::UnknownScheme);
    };
    let url = match kind {
        DbKind::Sqlite => {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| DbError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            private_file(path).map_err(|source| DbError::DataDir {
                path: path.to_owned(),
                source,
            })?;
            if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            }
        }
        DbKind::Postgres => url.to_owned(),
    };
    let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
    let pool_options = match kind {
        // One writer at a time is SQLite's model; WAL lets reads run beside it.
        DbKind::Sqlite => AnyPoolOptions::new().max_connections(4).after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                    .await?;
                Ok(())
            })
        }),
        DbKind::Postgres => AnyPoolOptions::new().max_connections(16),
    };
    let acquire = match kind {
        DbKind::Sqlite => Duration::from_secs(10),
        DbKind::Postgres => wait,
    };
    let pool = pool_options
        .acquire_timeout(acquire)
        .connect_with(options)
        .await
        .map_err(DbError::Connect)?;
    if kind == DbKind::Sqlite {
        pool.execute("PRAGMA journal_mode = WAL")
            .await
            .map_err(DbError::Connect)?;
    }
    let migrator = match kind {
        DbKind::Sqlite => &SQLITE,
        DbKind::Postgres => &POSTGRES,
    };
    migrator.run(&pool).await.map_err(DbError::Migrate)?;
    Ok((pool, kind))
}
