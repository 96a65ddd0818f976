//! Building and running the whole application, so tests start exactly what
//! `main` starts: `Application::build(config)` then `run_until_stopped`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use sqlx::AnyPool;
use streams::clock::{Clock, SystemClock};
use streams::ids::random_token;
use streams::inventory::{Inventory, MemoryInventory, RedisInventory};
use streams::service::{Settings, Streams};
use streams::store::StreamStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::adapters::banks::HttpTransport;
use crate::adapters::stock::{SharedClock, StreamsStock};
use crate::config::Config;
use crate::demo;
use crate::http::error::ApiError;
use crate::http::ratelimit::{Limiter, Limits};
use crate::http::routes;
use crate::metrics::Metrics;
use crate::realtime::publisher::{Hub, HubBus};
use crate::state::{AppInner, AppState};
use secrecy::{ExposeSecret, SecretString};
use streams::db;

/// Why `haul` could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("HAUL_DATABASE_URL: {0}")]
    Db(#[from] db::DbError),
    #[error("HAUL_REDIS_URL: could not connect to Redis")]
    Redis(#[source] streams::inventory::EngineError),
    #[error("HAUL_REDIS_URL: could not start the realtime bus")]
    Bus(#[source] crate::realtime::engine::EngineError),
    /// A backing server did not answer at start.
    #[error("{variable}: no answer within {} s", START_LIMIT.as_secs())]
    NoAnswer { variable: &'static str },
    #[error("HAUL_LISTEN: could not listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HAUL_DATA_DIR: could not read or write a generated secret at {path}")]
    Secret {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HAUL_DATA_DIR: could not lock {path}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HAUL_DATA_DIR: {path} is in use by another haul process ({holder}); stop it first, or give this one another directory")]
    DataDirInUse { path: String, holder: String },
    #[error("could not set up the outgoing HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("could not create the demo data")]
    Demo(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A built application, listening but not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    demo: Option<demo::Demo>,
    /// The embedded data directory's lock, held until the node has stopped.
    _dir_lock: Option<std::fs::File>,
}

/// How long a backing server may take to answer at start.
pub const START_LIMIT: Duration = Duration::from_secs(5);

/// `f`, or [`StartError::NoAnswer`] naming `variable` after [`START_LIMIT`].
async fn within<T>(variable: &'static str, f: impl Future<Output = T>) -> Result<T, StartError> {
    tokio::time::timeout(START_LIMIT, f)
        .await
        .map_err(|_| StartError::NoAnswer { variable })
}

/// The one writer of an embedded data directory: an exclusive lock on
/// `haul.lock` in it (released by the system when the process ends, however
/// it ends), with the holder's pid written in for the next one to name.
fn lock_data_dir(config: &Config) -> Result<Option<std::fs::File>, StartError> {
    use std::io::{Read, Seek, Write};
    if !config.is_embedded_db() {
        return Ok(None);
    }
    let path = config.data_dir.join("haul.lock");
    let wrap = |source| StartError::Lock {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(wrap)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(wrap)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(wrap)?;
            file.rewind().map_err(wrap)?;
            write!(file, "pid {}", std::process::id()).map_err(wrap)?;
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(StartError::DataDirInUse {
                path: config.data_dir.display().to_string(),
                holder: if holder.is_empty() {
                    "pid unknown".into()
                } else {
                    holder.chars().take(40).collect()
                },
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(wrap(e)),
    }
}

/// A secret from configuration, or else read from the data directory,
/// created there once.
fn load_or_create_secret(
    config: &Config,
    given: Option<&SecretString>,
    file: &str,
) -> Result<SecretString, StartError> {
    if let Some(s) = given {
        return Ok(s.clone());
    }
    let path = config.data_dir.join(file);
    let wrap = |source| StartError::Secret {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(SecretString::from(s.trim().to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(wrap(e)),
    }
    std::fs::create_dir_all(&config.data_dir).map_err(wrap)?;
    let secret = random_token(48);
    write_private(&path, &secret).map_err(wrap)?;
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

impl Application {
    /// Opens the stores, applies migrations, creates the demo (when asked)
    /// and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        let dir_lock = lock_data_dir(&config)?;
        let (pool, db_kind) = within(
            "HAUL_DATABASE_URL",
            db::connect_with(config.database_url.expose_secret(), config.db_timeout),
        )
        .await??;
        let token_secret = load_or_create_secret(&config, config.token_secret.as_ref(), "token_secret")?;
        let sandbox_secret = load_or_create_secret(&config, config.sandbox_secret.as_ref(), "sandbox_secret")?;
        let credentials_key = load_or_create_secret(&config, config.credentials_key.as_ref(), "credentials_key")?;
        let vault = payments::vault::Vault::new(credentials_key.expose_secret());
        let (hub, streams) = stock_and_events(&config, &pool, clock.clone()).await?;
        let (listener, public_url) = listen(&config).await?;
        let limits = Limits {
            per_buyer: Limiter::new(config.rate_buyer),
            per_addr: Limiter::new(config.rate_addr),
        };
        let realtime = crate::realtime::Realtime::new(config.viewers_per_addr);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(StartError::HttpClient)?;
        let metrics = Arc::new(Metrics::default());
        let sellers_vault = vault.clone();
        let payments = Arc::new(payments::service::Payments::new(payments::service::Parts {
            pool: pool.clone(),
            vault,
            clock: Arc::new(SharedClock(clock.clone())),
            transport: Arc::new(HttpTransport::new(http.clone(), &config)),
            stock: Arc::new(StreamsStock(streams.clone())),
            observer: Arc::new(crate::adapters::observer::PaymentsObserver {
                metrics: metrics.clone(),
                hub: hub.clone(),
            }),
            links: payments::service::Links {
                public_url: public_url.clone(),
            },
            sandbox_secret: sandbox_secret.expose_secret().to_owned(),
        }));
        let state = AppState::new(AppInner {
            sellers: crate::sellers::Sellers::new(pool.clone(), sellers_vault),
            people: crate::people::People::new(pool.clone()),
            signin_limits: crate::http::console::signin_limiter(&config),
            keys: payments::idempotency::Keys::new(pool.clone()),
            config,
            pool,
            db_kind,
            streams,
            hub,
            metrics,
            limits,
            token_secret,
            sandbox_secret,
            public_url,
            http,
            payments,
            realtime,
        });
        let demo = if state.config.demo {
            Some(demo::seed(&state).await.map_err(StartError::Demo)?)
        } else {
            None
        };
        Ok(Self {
            listener,
            state,
            demo,
            _dir_lock: dir_lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// What the demo created, when it ran.
    pub fn demo(&self) -> Option<&demo::Demo> {
        self.demo.as_ref()
    }

    /// Serves until `stop` completes, then stops accepting, drains requests
    /// in flight and stops the background workers.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = self.state.clone();
        let workers = crate::workers::start(&state, &shutdown_rx, self.demo.clone());

        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let tx = shutdown_tx.clone();
        let shutdown_state = self.state.clone();
        // Realtime pushes are small: send each at once (no Nagle).
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop.await;
                tracing::info!("shutting down: draining requests, viewers told to reconnect");
                let _ = tx.send(true);
                let _ = shutdown_state.realtime.shutdown.send(true);
            })
            .await;
        let _ = shutdown_tx.send(true);
        for w in workers {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
        if !self.state.hub.engine().drain(Duration::from_secs(5)).await {
            tracing::warn!("stopped with publications not yet in Redis");
        }
        tracing::info!("stopped");
        served
    }
}

/// The stock engine, the realtime publisher over the fan-out engine, and the
/// streams domain on them (live offers loaded into the engine).
async fn stock_and_events(
    config: &Config,
    pool: &AnyPool,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Hub>, Arc<Streams>), StartError> {
    let inventory: Arc<dyn Inventory> = match &config.redis_url {
        Some(url) => Arc::new(
            within(
                "HAUL_REDIS_URL",
                RedisInventory::connect_with(url.expose_secret(), &config.redis_prefix, config.redis_policy),
            )
            .await?
            .map_err(StartError::Redis)?,
        ),
        None => Arc::new(MemoryInventory::new()),
    };
    within("HAUL_REDIS_URL", inventory.ping())
        .await?
        .map_err(StartError::Redis)?;
    let history = crate::realtime::channels::HistoryLimits {
        size: config.history_size,
        ttl_ms: config.history_ttl_ms,
    };
    let bus = match &config.redis_url {
        Some(url) => HubBus::Redis {
            url: url.expose_secret().to_owned(),
            prefix: config.redis_prefix.clone(),
            policy: config.redis_policy,
        },
        None => HubBus::Own,
    };
    let hub = Arc::new(
        within(
            "HAUL_REDIS_URL",
            Hub::new(clock.clone(), history, inventory.clone(), bus),
        )
        .await?
        .map_err(StartError::Bus)?,
    );
    let streams = Arc::new(Streams::new(
        StreamStore::new(pool.clone()),
        inventory,
        clock.clone(),
        hub.clone(),
        Settings::default(),
    ));
    match streams.rebuild_all().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(offers = n, "loaded live offers into the stock engine"),
        Err(e) => tracing::warn!(error = ?e, "could not rebuild live offers; they load on first reserve"),
    }
    Ok((hub, streams))
}

/// The listener, and where browsers and banks reach it.
async fn listen(config: &Config) -> Result<(TcpListener, String), StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let public_url = match &config.public_url {
        Some(u) => u.clone(),
        None => format!(
            "http://{}",
            listener.local_addr().map_err(|source| StartError::Listen {
                addr: config.listen,
                source,
            })?
        ),
    };
    Ok((listener, public_url))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    routes::router()
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            // 405, with the route's `Allow` header (added by the router).
            let mut resp =
                ApiError::bad_request("method_not_allowed", "this route does not take that method").into_response();
            *resp.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
            resp
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::http::idempotency::layer,
        ))
        .layer(middleware::from_fn(crate::http::livemode::layer))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("a request handler panicked".into()).into_response()
        }))
        .with_state(state)
}

/// Request ids, a span per request, and the HTTP metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| random_token(16));
    let span = tracing::info_span!("request", %method, %route, %request_id);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::debug!(status, elapsed_ms = start.elapsed().as_millis() as u64, "answered"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    state.metrics.http_request(&route, &method, status, start.elapsed());
    resp
}
