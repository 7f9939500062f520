//! A child process serving on an address, killed when dropped (shared by the bench binaries).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vaccel_rpc::addr::Address;
use vaccel_rpc::transport::Stream;

/// A spawned server, killed and reaped on drop.
pub struct Proc {
    /// The process.
    pub child: Child,
}

impl Proc {
    /// Spawns `cmd` (output discarded) and waits up to 10 s until `addr` accepts connections.
    pub fn spawn(cmd: &mut Command, addr: &str) -> Result<Proc> {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {cmd:?}"))?;
        let proc = Proc { child };
        let addr: Address = addr.parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Stream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                bail!("{cmd:?} did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proc)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
