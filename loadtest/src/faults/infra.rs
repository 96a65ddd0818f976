//! The real processes of a fault run and the links between them: a private
//! PostgreSQL cluster, a private Redis, two `haul` nodes, a TCP proxy per
//! node and server (the nemesis cuts or slows it), a balancer in front of
//! the nodes, and a sink for the seller's webhooks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::Failure;

/// A loopback port free right now.
pub fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something listens on `port` (at most `within`).
async fn listening(port: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A command run as the `postgres` user when this process is root
/// (PostgreSQL refuses to run as root).
fn as_postgres(program: &Path) -> Command {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Where Debian keeps the newest PostgreSQL's programs.
fn postgres_bin() -> Result<PathBuf, Failure> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| Failure(format!("PostgreSQL's programs (/usr/lib/postgresql): {e}")))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| Failure("no initdb under /usr/lib/postgresql".into()))
}

/// A PostgreSQL cluster of this run's own (so restarting it disturbs
/// nothing else on the machine).
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

impl Postgres {
    pub async fn create(root: &Path) -> Result<Postgres, Failure> {
        let bin = postgres_bin()?;
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir)?;
        // The server's user owns its directory.
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(root)
            .status()
            .await;
        let out = as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            return Err(Failure(format!("initdb: {}", String::from_utf8_lossy(&out.stderr))));
        }
        let pg = Postgres {
            bin,
            dir,
            port: free_port()?,
        };
        pg.start().await?;
        let out = as_postgres(&pg.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "haul"])
            .output()
            .await?;
        if !out.status.success() {
            return Err(Failure(format!("createdb: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(pg)
    }

    pub fn url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/haul")
    }

    pub async fn start(&self) -> Result<(), Failure> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", "30", "-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            return Err(Failure(format!(
                "pg_ctl start: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Stops the server the way a crash does (`immediate`: no checkpoint,
    /// every connection dropped; recovery replays the log on start).
    pub async fn crash(&self) -> Result<(), Failure> {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .output()
            .await?;
        if !out.status.success() {
            return Err(Failure(format!(
                "pg_ctl stop: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Rows of `sql` (`|`-separated fields), read with `psql`: the checker
    /// reads the record itself, not through Haul.
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, Failure> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "haul",
            ])
            .args(["-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .await?;
        if !out.status.success() {
            return Err(Failure(format!("psql: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect())
    }

    pub async fn stop(&self) {
        let _ = self.crash().await;
    }
}

/// However a scenario ends (an error, a timeout), its server stops.
impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let mut c = std::process::Command::new("runuser");
            let root = std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
                .unwrap_or(false);
            let mut c = if root {
                c.args(["-u", "postgres", "--"]).arg(self.bin.join("pg_ctl"));
                c
            } else {
                std::process::Command::new(self.bin.join("pg_ctl"))
            };
            let _ = c
                .arg("-D")
                .arg(&data)
                .args(["-w", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A Redis of this run's own, nothing saved (a restart comes back empty).
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start(port: u16) -> Result<Redis, Failure> {
        let mut r = Redis { port, child: None };
        r.restart().await?;
        Ok(r)
    }

    pub async fn restart(&mut self) -> Result<(), Failure> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure(format!("redis-server: {e}")))?;
        self.child = Some(child);
        if !listening(self.port, Duration::from_secs(10)).await {
            return Err(Failure(format!("redis-server did not start on {}", self.port)));
        }
        Ok(())
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// `SHUTDOWN NOSAVE`, asked over the protocol as an operator would.
    pub async fn shutdown_nosave(&mut self) -> Result<(), Failure> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).await?;
        s.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n").await?;
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        if let Some(mut c) = self.child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
        }
        Ok(())
    }
}

/// What a link does to the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Pass,
    /// Nothing gets through (a partition: connections hang, none refused);
    /// on healing, what was cut is closed.
    Cut,
    /// Every chunk waits this long each way.
    Slow(Duration),
}

/// A TCP proxy the nemesis controls.
pub struct Proxy {
    pub port: u16,
    link: watch::Sender<Link>,
}

impl Proxy {
    pub async fn start(target: u16) -> Result<Arc<Proxy>, Failure> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (link, rx) = watch::channel(Link::Pass);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    if *rx.borrow() == Link::Cut {
                        hold_until_healed(rx).await;
                        return;
                    }
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    splice(inbound, outbound, rx).await;
                });
            }
        });
        Ok(Arc::new(Proxy { port, link }))
    }

    pub fn set(&self, link: Link) {
        let _ = self.link.send(link);
    }
}

async fn hold_until_healed(mut rx: watch::Receiver<Link>) {
    while *rx.borrow_and_update() == Link::Cut {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn splice(a: TcpStream, b: TcpStream, rx: watch::Receiver<Link>) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::select! {
        _ = pump(ar, bw, rx.clone()) => {}
        _ = pump(br, aw, rx) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<Link>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            // A cut freezes a connection even while it is idle.
            _ = async {
                loop {
                    if *rx.borrow_and_update() == Link::Cut { break; }
                    if rx.changed().await.is_err() { std::future::pending::<()>().await; }
                }
            } => {
                hold_until_healed(rx.clone()).await;
                return;
            }
        };
        let link = *rx.borrow();
        match link {
            Link::Cut => {
                hold_until_healed(rx.clone()).await;
                return;
            }
            Link::Slow(d) => tokio::time::sleep(d).await,
            Link::Pass => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP balancer in front of the nodes: each connection goes to the next
/// node that accepts it (a killed node is skipped), as a load balancer's
/// health check would do.
pub async fn balancer_on(port: u16, nodes: Vec<u16>) -> Result<(), Failure> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let next = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let nodes = nodes.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let first = next.fetch_add(1, Ordering::Relaxed) as usize;
                for i in 0..nodes.len() {
                    let port = nodes[(first + i) % nodes.len()];
                    if let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)).await {
                        let (_, rx) = watch::channel(Link::Pass);
                        splice(inbound, outbound, rx).await;
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}

/// One `haul` node.
pub struct Node {
    pub name: &'static str,
    pub port: u16,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn new(name: &'static str, binary: PathBuf, env: Vec<(String, String)>, log: PathBuf) -> Result<Node, Failure> {
        Ok(Node {
            name,
            port: free_port()?,
            binary,
            env,
            log,
            child: None,
        })
    }

    /// The node's configuration, for the `haul` command line on its record.
    pub fn env_for_cli(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self, http: &reqwest::Client) -> Result<(), Failure> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HAUL_LISTEN", format!("127.0.0.1:{}", self.port))
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure(format!("{}: {e}", self.binary.display())))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/readyz", self.base())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Failure(format!(
            "node {} was not ready in 30 s (log: {})",
            self.name,
            self.log.display()
        )))
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// Runs `haul seller create` on the record; the seller's test-mode key.
pub async fn seller_key(binary: &Path, env: &[(String, String)]) -> Result<String, Failure> {
    let out = Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["seller", "create", "--name", "Fault shop"])
        .output()
        .await?;
    if !out.status.success() {
        return Err(Failure(format!(
            "haul seller create: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("test_key").map(|k| k.trim().to_owned()))
        .ok_or_else(|| Failure("haul seller create printed no test_key".into()))
}

/// A seller's webhook endpoint: every delivery's body, answered 200 (a
/// minimal HTTP/1.1 server; Haul sends `Content-Length` bodies).
pub async fn webhook_sink() -> Result<(SocketAddr, Arc<Mutex<Vec<Value>>>), Failure> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // Headers, then the body they announce; keep-alive too.
                    let Some(end) = find(&buf, b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf[end + 4..end + 4 + len]) {
                        sink.lock().expect("sink lock").push(v);
                    }
                    buf.drain(..end + 4 + len);
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((addr, got))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
