//! A throwaway `redis-server` for fleet tests: its own temp dir, a unix
//! socket, no persistence, killed when dropped. No Docker, no fixed port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` listening only on a unix socket in a new temp dir.
    /// Panics with instructions when `redis-server` is not installed.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let mut server = Self { child: None, dir };
        server.restart();
        server
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// `redis+unix:///…/redis.sock`, for `[cluster] redis_url`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The `[cluster]` table for a replica using this server.
    pub fn cluster_toml(&self) -> String {
        format!("[cluster]\nredis_url = \"{}\"\ntimeout = \"100ms\"\nstartup_wait = \"5s\"\n", self.url())
    }

    /// Kills the server (SIGKILL): whatever it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same socket (empty: nothing is saved).
    pub fn restart(&mut self) {
        self.kill();
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `redis-server` ({e}): the fleet tests need it installed \
                     (Debian: apt-get install redis-server; .ci/run installs it)"
                )
            });
        self.child = Some(child);
        wait_for_socket(&socket);
    }
}

fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not open {} within 10 s", socket.display());
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
