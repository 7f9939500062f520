//! `vaccel-rpc-agent --check ADDR`: one real round trip to an agent (connect, then
//! `GetCapabilities`), bounded by a deadline, for Kubernetes exec probes, systemd and scripts.
//!
//! An agent without our extensions (upstream's) answers `GetCapabilities` with "does not
//! exist": that is still a round trip through its ttrpc server, so it counts as healthy.

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vaccel_rpc::addr::Address;
use vaccel_rpc::client::Client;
use vaccel_rpc::transport::Stream;

/// What a successful check learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// How long the connection and the round trip took.
    pub elapsed: Duration,
    /// The agent's extension protocol version; `None` for an upstream agent.
    pub extensions: Option<u32>,
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Nothing answered within the deadline (a black-holed TCP address, a stuck agent).
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        /// The address checked.
        address: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The connection failed (nothing listening, no such socket file, permission denied).
    #[error("cannot connect to {address}")]
    Connect {
        /// The address checked.
        address: String,
        /// The transport's error.
        #[source]
        source: io::Error,
    },
    /// Connected, but the peer did not answer like a ttrpc server.
    #[error("{address} did not answer like a vAccel RPC agent")]
    Rpc {
        /// The address checked.
        address: String,
        /// The client's error.
        #[source]
        source: vaccel::Error,
    },
    /// The check's worker thread could not be started.
    #[error("cannot start the check")]
    Spawn(#[source] io::Error),
}

fn set_timeouts(stream: &Stream, timeout: Duration) -> io::Result<()> {
    let t = Some(timeout);
    match stream {
        Stream::Tcp(s) => {
            s.set_read_timeout(t)?;
            s.set_write_timeout(t)
        }
        Stream::Unix(s) => {
            s.set_read_timeout(t)?;
            s.set_write_timeout(t)
        }
        Stream::Vsock(s) => {
            s.set_read_timeout(t)?;
            s.set_write_timeout(t)
        }
    }
}

fn round_trip(address: &Address, timeout: Duration) -> Result<Health, CheckError> {
    let start = Instant::now();
    let name = address.to_string();
    let stream = Stream::connect(address).map_err(|source| CheckError::Connect {
        address: name.clone(),
        source,
    })?;
    // Socket timeouts bound the worker thread itself, not only the caller's wait.
    set_timeouts(&stream, timeout).map_err(|source| CheckError::Connect {
        address: name.clone(),
        source,
    })?;
    let client = Client::from_stream(stream, name.clone()).map_err(|source| CheckError::Rpc {
        address: name,
        source,
    })?;
    let extensions = client.capabilities().map(|c| c.version);
    client.close();
    Ok(Health {
        elapsed: start.elapsed(),
        extensions,
    })
}

/// Connects to the agent at `address` and makes one call, all within `timeout`. A connection
/// attempt still blocked at the deadline is left to its socket timeouts on a worker thread.
pub fn check(address: &Address, timeout: Duration) -> Result<Health, CheckError> {
    let (tx, rx) = mpsc::channel();
    let worker_address = address.clone();
    std::thread::Builder::new()
        .name("vaccel-check".into())
        .spawn(move || {
            let _ = tx.send(round_trip(&worker_address, timeout));
        })
        .map_err(CheckError::Spawn)?;
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(CheckError::Timeout {
            address: address.to_string(),
            timeout,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let addr: Address = format!("unix://{}", dir.path().join("none.sock").display())
            .parse()
            .unwrap();
        let start = Instant::now();
        let err = check(&addr, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, CheckError::Connect { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_silent_peer_times_out() {
        // Accepts (the kernel does, from the backlog) but never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: Address = format!("tcp://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let start = Instant::now();
        let err = check(&addr, Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(err, CheckError::Timeout { .. } | CheckError::Rpc { .. }),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
