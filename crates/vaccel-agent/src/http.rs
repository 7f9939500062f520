//! The metrics endpoint (`--metrics-address`): a minimal HTTP/1.1 responder on `std::net`
//! serving `GET /metrics` (Prometheus text) and `GET /healthz` (`ok`), one short-lived thread
//! per connection, at most [`MAX_CONNECTIONS`] at once, every connection closed after one
//! answer.
//!
//! Slow clients cannot block it: a client has [`HEAD_DEADLINE`] in all to send its request
//! head (not per read: trickling a byte at a time does not extend it), and when every slot
//! is taken a new connection evicts the oldest one instead of being turned away, so a scrape
//! or a health check (answered in a millisecond) always gets through.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Agent;

/// Connections served at once; a new one evicts the oldest.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its whole request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// How long writing the answer may wait for the client to read.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// The running endpoint; stops (and joins its accept thread) on drop.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `address` (`HOST:PORT`; port 0 picks one) and serves `agent`'s metrics.
    pub fn start(address: &str, agent: Arc<Agent>) -> io::Result<MetricsServer> {
        let addr = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to bind"))?;
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("vaccel-metrics".into())
                .spawn(move || accept_loop(&listener, &agent, &stop))?
        };
        Ok(MetricsServer {
            local_addr,
            stop,
            accept: Some(accept),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept.
        let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The connections being served, oldest first, each with a handle to shut it down.
#[derive(Default)]
struct Slots {
    next: u64,
    open: VecDeque<(u64, TcpStream)>,
}

fn lock(slots: &Mutex<Slots>) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, agent: &Arc<Agent>, stop: &AtomicBool) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        let Ok(handle) = conn.try_clone() else {
            continue;
        };
        let id = {
            let mut s = lock(&slots);
            if s.open.len() >= MAX_CONNECTIONS
                && let Some((_, oldest)) = s.open.pop_front()
            {
                log::debug!("metrics: {MAX_CONNECTIONS} connections open, evicting the oldest");
                // Its thread's read or write fails at once and it ends.
                let _ = oldest.shutdown(Shutdown::Both);
            }
            s.next += 1;
            let id = s.next;
            s.open.push_back((id, handle));
            id
        };
        let agent = Arc::clone(agent);
        let done = Arc::clone(&slots);
        let spawned = std::thread::Builder::new()
            .name("vaccel-metrics-conn".into())
            .spawn(move || {
                if let Err(e) = serve(conn, &agent) {
                    log::debug!("metrics: {e}");
                }
                lock(&done).open.retain(|(i, _)| *i != id);
            });
        if spawned.is_err() {
            lock(&slots).open.retain(|(i, _)| *i != id);
        }
    }
}

/// Reads the request head: up to the blank line, at most [`MAX_HEAD`] bytes, within
/// [`HEAD_DEADLINE`] from now.
fn read_head(conn: &mut TcpStream) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            ));
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
            return Ok(head);
        }
    }
}

fn serve(mut conn: TcpStream, agent: &Agent) -> io::Result<()> {
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut conn)?;
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    // The path without a query string.
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            agent.metrics_text().unwrap_or_default(),
        ),
        ("GET" | "HEAD", "/healthz") => ("200 OK", "text/plain; charset=utf-8", "ok\n".into()),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "method not allowed\n".into(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&response)?;
    conn.flush()
}
