//! Agent addresses: `tcp://host:port`, `unix:///path`, `unix://@abstract`, `vsock://cid:port`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// TCP: a host name, IPv4 or IPv6 address (brackets kept out), and a port.
    Tcp {
        /// Host as written (resolved at connect/bind time).
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket at a path.
    Unix(PathBuf),
    /// A Linux abstract Unix socket (`unix://@name`).
    UnixAbstract(String),
    /// vsock: context id and port. Agents bind any CID; clients connect to the CID given.
    Vsock {
        /// Context id (2 = the host).
        cid: u32,
        /// Port.
        port: u32,
    },
}

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address '{address}': {reason}")]
pub struct AddressError {
    /// The text.
    pub address: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| AddressError {
            address: s.to_owned(),
            reason,
        };
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| err("expected <scheme>://..., e.g. tcp://127.0.0.1:65500"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "tcp" => {
                let (host, port) = if let Some(after) = rest.strip_prefix('[') {
                    let (host, tail) = after
                        .split_once(']')
                        .ok_or_else(|| err("unclosed '[' in IPv6 address"))?;
                    let port = tail.strip_prefix(':').ok_or_else(|| err("missing :port"))?;
                    (host, port)
                } else {
                    let (host, port) = rest.rsplit_once(':').ok_or_else(|| err("missing :port"))?;
                    if host.contains(':') {
                        return Err(err("IPv6 addresses go in brackets: tcp://[::1]:65500"));
                    }
                    (host, port)
                };
                if host.is_empty() {
                    return Err(err("missing host"));
                }
                let port = port
                    .parse()
                    .map_err(|_| err("port is not a number 0-65535"))?;
                Ok(Address::Tcp {
                    host: host.to_ascii_lowercase(),
                    port,
                })
            }
            "unix" => {
                if let Some(name) = rest.strip_prefix('@') {
                    if name.is_empty() {
                        return Err(err("empty abstract socket name"));
                    }
                    Ok(Address::UnixAbstract(name.to_owned()))
                } else if rest.is_empty() {
                    Err(err("empty socket path"))
                } else {
                    Ok(Address::Unix(PathBuf::from(rest)))
                }
            }
            "vsock" => {
                let (cid, port) = rest
                    .split_once(':')
                    .ok_or_else(|| err("expected vsock://cid:port"))?;
                let cid = if cid == "any" || cid == "-1" {
                    u32::MAX
                } else {
                    cid.parse().map_err(|_| err("cid is not a number"))?
                };
                let port = port.parse().map_err(|_| err("port is not a number"))?;
                Ok(Address::Vsock { cid, port })
            }
            _ => Err(err("unsupported protocol (use tcp, unix or vsock)")),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::UnixAbstract(n) => write!(f, "unix://@{n}"),
            Address::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            "tcp://127.0.0.1:65500".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 65500
            }
        );
        assert_eq!(
            "TCP://LocalHost:1".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "localhost".into(),
                port: 1
            }
        );
        assert_eq!(
            "tcp://[::1]:8888".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "::1".into(),
                port: 8888
            }
        );
        assert_eq!(
            "unix:///run/vaccel/vaccel.sock".parse::<Address>().unwrap(),
            Address::Unix("/run/vaccel/vaccel.sock".into())
        );
        assert_eq!(
            "unix://@vaccel".parse::<Address>().unwrap(),
            Address::UnixAbstract("vaccel".into())
        );
        assert_eq!(
            "vsock://2:2048".parse::<Address>().unwrap(),
            Address::Vsock { cid: 2, port: 2048 }
        );
        for s in [
            "tcp://[::1]:8888",
            "tcp://127.0.0.1:65500",
            "unix:///x",
            "unix://@n",
            "vsock://3:5",
        ] {
            assert_eq!(s.parse::<Address>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_addresses() {
        for s in [
            "127.0.0.1:1",
            "http://x:1",
            "tcp://x",
            "tcp://:1",
            "tcp://x:99999",
            "tcp://::1:5",
            "tcp://[::1",
            "unix://",
            "unix://@",
            "vsock://2",
            "vsock://x:1",
            "a://b://c",
        ] {
            assert!(s.parse::<Address>().is_err(), "{s} accepted");
        }
    }
}
