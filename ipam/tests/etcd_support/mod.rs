//! A throwaway single-node etcd (Debian's `etcd-server`) for tests: random 127.0.0.1 ports, a
//! data directory under /dev/shm (its WAL preallocates ~62 MB), started in about 0.15 s, stopped
//! by PID and removed on drop. `kill` + `start_again` keep the data directory and ports, for
//! outage tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// TLS material for etcd's client port (PEM files).
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA for client certificates (`--client-cert-auth`).
    pub client_ca: Option<PathBuf>,
}

pub struct Etcd {
    child: Option<Child>,
    /// Scratch directory: `data/` (etcd's data dir), `etcd.log`.
    pub dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    tls: Option<ServerTls>,
}

/// A scratch directory under /dev/shm (RAM) when there is one, else the temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!(
        "tortie-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Two distinct free ports (bound together, then released: a small race we retry on).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

impl Etcd {
    pub fn start() -> Etcd {
        Self::start_with(None)
    }

    pub fn start_with(tls: Option<ServerTls>) -> Etcd {
        let dir = scratch_dir("etcd");
        let mut last = String::new();
        for _ in 0..5 {
            let (client_port, peer_port) = free_ports();
            let mut e = Etcd {
                child: None,
                dir: dir.clone(),
                client_port,
                peer_port,
                tls: None,
            };
            e.tls = tls.as_ref().map(|t| ServerTls {
                cert: t.cert.clone(),
                key: t.key.clone(),
                client_ca: t.client_ca.clone(),
            });
            let t = Instant::now();
            match e.spawn() {
                Ok(()) => {
                    eprintln!("etcd {} started in {:?}", e.endpoint(), t.elapsed());
                    return e;
                }
                Err(m) => {
                    last = m;
                    e.kill();
                    let _ = std::fs::remove_dir_all(dir.join("data"));
                    std::mem::forget(e); // keep `dir` for the next try
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("etcd did not start: {last}");
    }

    /// `127.0.0.1:<port>` (for etcd-client: add a scheme when TLS is on).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg("t")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("t={peer}"))
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("warn")
            // A single member elects itself after the election timeout: 100 ms instead of 1 s
            // makes a start ~0.15 s instead of 0.4-1 s. (Lease minimum TTL becomes 1 s.)
            .arg("--heartbeat-interval")
            .arg("10")
            .arg("--election-timeout")
            .arg("100");
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.cert)
                .arg("--key-file")
                .arg(&t.key);
            if let Some(ca) = &t.client_ca {
                cmd.arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(ca);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        // A safety net: etcd dies with the thread that started it (the test's), even when the
        // test binary is killed before Drop runs.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            format!("cannot run etcd ({e}); install it: apt-get install etcd-server etcd-client")
        })?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(10))
    }

    fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!("etcd exited ({status}): {}", self.log_tail()));
                }
            }
            if self.healthy() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "etcd not healthy after {limit:?}: {}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Plain HTTP /health (TLS ports: the port accepting connections is enough here).
    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.client_port).parse().unwrap(),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        if self.tls.is_some() {
            // Give it the time to become leader; a TLS client check would need a TLS stack here.
            std::thread::sleep(Duration::from_millis(300));
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGKILL (an abrupt outage), wait for it to go.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (a clean stop), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same data directory and ports.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "etcd is still running");
        let t = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old process's ports may take a moment to be free.
                Err(m) if t.elapsed() < Duration::from_secs(10) => {
                    eprintln!("etcd restart: {m}; retrying");
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(m) => panic!("etcd did not restart: {m}"),
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
