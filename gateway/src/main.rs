//! The `haul` binary: reads configuration, builds the application, runs it
//! until SIGINT or SIGTERM.

use secrecy::ExposeSecret;
use std::process::ExitCode;

use gateway::app::Application;
use gateway::config::{Config, LogFormat};
use gateway::sellers::{self, Mode};
use streams::clock::{Clock, SystemClock};
use streams::db;
use streams::ids::SellerId;

enum Command {
    Serve { demo: bool },
    SellerCreate { name: String },
    SellerKey { seller: SellerId, mode: Mode },
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["serve"] => Ok(Command::Serve { demo: true }),
        ["--no-demo"] | ["serve", "--no-demo"] => Ok(Command::Serve { demo: false }),
        ["--help"] | ["-h"] | ["help"] => Ok(Command::Help),
        ["--version"] | ["-V"] => Ok(Command::Version),
        ["seller", "create", "--name", name] => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                return Err("--name must be 1 to 200 characters".into());
            }
            Ok(Command::SellerCreate { name: name.to_owned() })
        }
        ["seller", "key", "--seller", seller, "--mode", mode] => {
            let seller = SellerId::parse(seller).map_err(|e| format!("--seller: {e}"))?;
            let mode = Mode::parse(mode).ok_or("--mode must be live or test")?;
            Ok(Command::SellerKey { seller, mode })
        }
        ["seller", ..] => {
            Err("usage: haul seller create --name NAME | haul seller key --seller SELLER_ID --mode live|test".into())
        }
        _ => Err(format!("unknown arguments: {}; see haul --help", words.join(" "))),
    }
}

fn init_logs(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("haul: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("haul: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", Config::help());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("haul {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::SellerCreate { name } => {
            let result = async {
                let (pool, _) = db::connect(config.database_url.expose_secret()).await?;
                let now = SystemClock.now_ms();
                let seller = sellers::create_seller(&pool, &name, false, Mode::Live, now).await?;
                let mut keys = Vec::new();
                for mode in [Mode::Live, Mode::Test] {
                    let row = sellers::mode_of_account(&pool, &seller, mode, now)
                        .await?
                        .ok_or("the seller row just made is gone")?;
                    let key = sellers::generate_key(mode);
                    sellers::add_key(&pool, &row, &key, now).await?;
                    keys.push(key);
                }
                let base = config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.listen));
                let people = gateway::people::People::new(pool.clone());
                let owner = gateway::http::console::owner_link(&people, &base, &seller, now).await?;
                Ok::<_, Box<dyn std::error::Error>>((seller, keys, owner))
            }
            .await;
            match result {
                Ok((seller, keys, owner)) => {
                    println!(
                        "seller_id {seller}\nlive_key  {}\ntest_key  {}\n(the keys are shown only now)\n\
                         owner_link {owner}\n(open it to choose the owner's email and password; it works once, within a week)",
                        keys[0], keys[1]
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("haul: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::SellerKey { seller, mode } => {
            let result = async {
                let (pool, _) = db::connect(config.database_url.expose_secret()).await?;
                let now = SystemClock.now_ms();
                let row = sellers::mode_of_account(&pool, &seller, mode, now)
                    .await?
                    .ok_or_else(|| {
                        format!("no seller account {seller} (or it is the demo, which has test mode only)")
                    })?;
                let key = sellers::generate_key(mode);
                sellers::add_key(&pool, &row, &key, now).await?;
                Ok::<_, Box<dyn std::error::Error>>(key)
            }
            .await;
            match result {
                Ok(key) => {
                    println!("{}_key  {key}\n(the key is shown only now)", mode.as_str());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("haul: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { demo } => {
            config.demo = config.demo && demo;
            init_logs(&config);
            let app = match Application::build(config).await {
                Ok(app) => app,
                Err(e) => {
                    let mut msg = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        msg.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    eprintln!("haul: cannot start: {msg}");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(addr = %app.local_addr(), "haul listening");
            match app.run_until_stopped(shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("haul: server error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
