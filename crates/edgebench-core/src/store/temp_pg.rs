//! A throwaway PostgreSQL server for tests: Debian's `initdb` and `postgres` in a temporary
//! folder, on a random loopback port, one per test process, stopped when the process ends (the
//! server gets SIGTERM when its parent thread dies, through util-linux's `setpriv`). Each caller gets a database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server of this process, started on first use.
struct Server {
    port: u16,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Where Debian keeps the server's programs (`/usr/lib/postgresql/<version>/bin`), else `PATH`.
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(name))
}

/// Runs the command as the `postgres` user when this process is root (the server refuses root).
fn as_server_user(cmd: &mut Command, owner: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
}

fn owner() -> Result<Option<(u32, u32)>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(|e| e.to_string())?
        .ok_or("running as root and there is no `postgres` user to run the server as")?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

fn chown_all(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Removes the folders of earlier test processes that are gone.
fn sweep_stale(base: &Path) {
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("edgebench-pg-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn start() -> Result<Server, String> {
    let base = std::env::temp_dir();
    sweep_stale(&base);
    let dir = base.join(format!("edgebench-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let owner = owner()?;
    chown_all(&dir, owner)?;
    let data = dir.join("data");
    let mut init = Command::new(bin("initdb"));
    init.arg("-D")
        .arg(&data)
        .args(["-U", "edgebench", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_server_user(&mut init, owner);
    let out = init
        .output()
        .map_err(|e| format!("initdb ({}): {e}", bin("initdb").display()))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let port = free_port()?;
    let (tx, rx) = std::sync::mpsc::channel();
    // The server is the child of a thread that lives as long as the process, so the parent-death
    // signal fires when the process ends, not when the first test's thread does.
    std::thread::Builder::new()
        .name("temp-postgres".into())
        .spawn(move || {
            // util-linux's setpriv sets the parent-death signal after the user change and then
            // becomes the server.
            let mut cmd = Command::new("setpriv");
            cmd.args(["--pdeathsig", "TERM", "--"])
                .arg(bin("postgres"))
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "unix_socket_directories="])
                .args(["-c", "fsync=off"])
                .args(["-c", "max_connections=100"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            as_server_user(&mut cmd, owner);
            let _ = tx.send(cmd.spawn().map_err(|e| format!("postgres: {e}")));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    let child = rx.recv().map_err(|e| e.to_string())??;
    let url = format!("postgres://edgebench@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "the server (pid {}) did not answer: {e}",
                    child.id()
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Ok(Server { port })
}

/// Whether tests must have PostgreSQL (`EDGEBENCH_REQUIRE_POSTGRES=1`, as CI sets).
pub fn required() -> bool {
    std::env::var("EDGEBENCH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A fresh database on this process's server: its URL. `None` (with the reason printed) when
/// no PostgreSQL server can be started here and it is not required; a panic when required.
pub fn database() -> Option<String> {
    let server = match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) if required() => panic!("PostgreSQL is required here: {e}"),
        Err(e) => {
            eprintln!("skipping the PostgreSQL part: {e}");
            return None;
        }
    };
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let admin = format!("postgres://edgebench@127.0.0.1:{}/postgres", server.port);
    let mut c = postgres::Client::connect(&admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("creating a test database: {e}"));
    Some(format!(
        "postgres://edgebench@127.0.0.1:{}/{name}",
        server.port
    ))
}
