//! RPC benchmark: image classification (genop) through the `rpc` plugin and a real
//! `vaccel-rpc-agent` (noop plugin), beside a raw-socket ping-pong of the same sizes measured in
//! the same run, over unix and tcp.
//!
//! Build and run: `cargo build --release --workspace && target/release/rpc-bench`
//! (pin with `taskset -c 0 target/release/rpc-bench` for latency figures; children inherit it).
//! Prints markdown tables for BENCHMARKS.md.
//!
//! `rpc-bench --shm [RUNS]`: shared memory for large payloads (docs/wire.md, extension 6) only:
//! a 64 MiB image classification through the rpc plugin to an agent offering shared memory,
//! the same to an agent that does not (`--max-shared-memory 0`: the socket path), and the raw
//! unix-socket round trip of the same bytes, interleaved, in the same run; and the same
//! image placed in a `SharedBuffer` (argument buffers: the image is not copied at all).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod proc;
use proc::Proc;

use anyhow::{Context, Result, bail};
use vaccel::{Config, Session};
use vaccel_plugin_rpc::RpcPlugin;
use vaccel_rpc::addr::Address;
use vaccel_rpc::shm::SharedBuffer;
use vaccel_rpc::transport::{Listener, Stream};

/// Bytes the agent answers a classify genop with (two 512-byte write args and framing).
const REPLY: usize = 1100;
/// What the client sends besides the image (the write args travel too, as upstream does).
const REQUEST_EXTRA: usize = 1100;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, addr] = args.as_slice()
        && flag == "--raw-server"
    {
        return raw_server(&addr.parse()?);
    }
    let dir = std::env::temp_dir().join(format!("rpc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let agent_bin = exe.with_file_name("vaccel-rpc-agent");
    if !agent_bin.exists() {
        bail!(
            "{} not found: cargo build --release --workspace first",
            agent_bin.display()
        );
    }
    if args.get(1).is_some_and(|a| a == "--shm") {
        let runs = args.get(2).map_or(Ok(3), |n| n.parse())?;
        let result = shm_bench(&exe, &agent_bin, &dir, runs);
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }
    println!(
        "| transport | call | vAccel p50 (us) | vAccel p99 (us) | raw p50 (us) | raw p99 (us) | p50 ratio | vAccel throughput |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rss = Vec::new();
    for transport in ["unix", "tcp"] {
        let (agent_addr, raw_addr) = match transport {
            "unix" => (
                format!("unix://{}/agent.sock", dir.display()),
                format!("unix://{}/raw.sock", dir.display()),
            ),
            _ => (
                format!("tcp://127.0.0.1:{}", free_port()?),
                format!("tcp://127.0.0.1:{}", free_port()?),
            ),
        };
        let agent = Proc::spawn(
            Command::new(&agent_bin).args(["-a", &agent_addr, "--vaccel-config", "plugins=noop"]),
            &agent_addr,
        )?;
        let raw = Proc::spawn(
            Command::new(&exe).args(["--raw-server", &raw_addr]),
            &raw_addr,
        )?;
        std::thread::sleep(Duration::from_millis(200));
        let idle_kib = status_kib(agent.child.id(), "VmRSS:")?;
        let agent_addr: Address = agent_addr.parse()?;
        let raw_addr: Address = raw_addr.parse()?;
        for (label, size, iters) in [
            ("1 KiB image", 1 << 10, 20_000),
            ("1 MiB image", 1 << 20, 300),
            ("64 MiB image", 64 << 20, 12),
        ] {
            let image = vec![0x5au8; size];
            let v = vaccel_latencies(&agent_addr, &image, iters, 1)?;
            let r = raw_latencies(&raw_addr, size + REQUEST_EXTRA, iters, 1)?;
            row(transport, label, &v, &r, size);
        }
        let image = vec![0x5au8; 1 << 10];
        let v = vaccel_latencies(&agent_addr, &image, 5_000, 4)?;
        let r = raw_latencies(&raw_addr, (1 << 10) + REQUEST_EXTRA, 5_000, 4)?;
        row(transport, "1 KiB image, 4 concurrent clients", &v, &r, 0);
        let peak_kib = status_kib(agent.child.id(), "VmHWM:")?;
        rss.push((transport, idle_kib, peak_kib));
        drop(raw);
        drop(agent);
    }
    println!();
    println!(
        "| transport | agent idle RSS | agent peak RSS (after the 64 MiB calls) | peak / 64 MiB payload |"
    );
    println!("|---|---|---|---|");
    for (t, idle, peak) in rss {
        println!(
            "| {t} | {:.1} MiB | {:.1} MiB | {:.2}x |",
            idle as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak as f64 / 1024.0 / 64.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn row(transport: &str, label: &str, v: &[f64], r: &[f64], size: usize) {
    let (vp50, vp99, rp50, rp99) = (pct(v, 50.0), pct(v, 99.0), pct(r, 50.0), pct(r, 99.0));
    let tput = if size >= 1 << 20 {
        format!("{:.0} MB/s", size as f64 / vp50)
    } else {
        format!("{:.0} calls/s/client", 1e6 / vp50)
    };
    println!(
        "| {transport} | {label} | {vp50:.1} | {vp99:.1} | {rp50:.1} | {rp99:.1} | {:.2}x | {tput} |",
        vp50 / rp50
    );
}

fn pct(samples: &[f64], p: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

/// Latencies (us) of `iters` classify calls per client, `clients` clients in parallel (each
/// its own runtime, plugin and connection).
fn vaccel_latencies(
    addr: &Address,
    image: &[u8],
    iters: usize,
    clients: usize,
) -> Result<Vec<f64>> {
    latencies(addr, image, iters, clients, false)
}

/// [`vaccel_latencies`], with each client's image in a [`SharedBuffer`] (written once, before
/// the calls) when `shared`.
fn latencies(
    addr: &Address,
    image: &[u8],
    iters: usize,
    clients: usize,
    shared: bool,
) -> Result<Vec<f64>> {
    let image = Arc::new(image.to_vec());
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, image) = (addr.clone(), Arc::clone(&image));
            std::thread::spawn(move || -> Result<Vec<f64>> {
                let rt = vaccel::builder()
                    .skip_logging()
                    .config(Config::default().with_log_level(None))
                    .plugin(Arc::new(RpcPlugin::with_address(addr)))
                    .build()?;
                let sess = Session::new(&rt, 0)?;
                let mut buffer = None;
                if shared {
                    let mut b = SharedBuffer::new(image.len())?;
                    b.copy_from_slice(&image);
                    buffer = Some(b);
                }
                let image: &[u8] = buffer.as_deref().unwrap_or(&image);
                let (mut text, mut name) = (vec![0u8; 512], vec![0u8; 512]);
                for _ in 0..iters.min(50) {
                    sess.image_classify(image, &mut text, &mut name)?;
                }
                let mut lat = Vec::with_capacity(iters);
                for _ in 0..iters {
                    let t = Instant::now();
                    sess.image_classify(image, &mut text, &mut name)?;
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??,
        );
    }
    Ok(all)
}

/// The baseline: a framed ping-pong of the same sizes on a plain socket to a process that
/// only echoes a fixed-size reply.
fn raw_latencies(addr: &Address, request: usize, iters: usize, clients: usize) -> Result<Vec<f64>> {
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || -> Result<Vec<f64>> {
                let mut s = Stream::connect(&addr)?;
                let mut msg = (request as u32).to_be_bytes().to_vec();
                msg.resize(request + 4, 0x5a);
                let mut reply = vec![0u8; REPLY];
                let mut lat = Vec::with_capacity(iters);
                for i in 0..iters + iters.min(50) {
                    let t = Instant::now();
                    s.write_all(&msg)?;
                    s.read_exact(&mut reply)?;
                    if i >= iters.min(50) {
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("raw client thread panicked"))??,
        );
    }
    Ok(all)
}

fn raw_server(addr: &Address) -> Result<()> {
    let listener = Listener::bind(addr)?;
    loop {
        let mut s = listener.accept()?;
        std::thread::spawn(move || -> Result<()> {
            let mut buf = vec![0u8; 1 << 20];
            let reply = vec![0xa5u8; REPLY];
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    return Ok(());
                }
                let mut left = u32::from_be_bytes(len) as usize;
                while left > 0 {
                    let n = left.min(buf.len());
                    s.read_exact(&mut buf[..n])?;
                    left -= n;
                }
                s.write_all(&reply)?;
            }
        });
    }
}

/// Shared memory against the socket path and the raw round trip, `runs` rounds interleaved
/// (each round: 12 calls of each kind), 64 MiB and 1 KiB (which must not change: small calls
/// keep the socket).
fn shm_bench(
    exe: &std::path::Path,
    agent_bin: &std::path::Path,
    dir: &std::path::Path,
    runs: usize,
) -> Result<()> {
    let spawn_agent = |name: &str, extra: &[&str]| -> Result<(Proc, Address)> {
        let addr = format!("unix://{}/{name}.sock", dir.display());
        let mut cmd = Command::new(agent_bin);
        cmd.args(["-a", &addr, "--vaccel-config", "plugins=noop"])
            .args(extra);
        Ok((Proc::spawn(&mut cmd, &addr)?, addr.parse()?))
    };
    let (_shm_agent, shm_addr) = spawn_agent("shm", &[])?;
    let (_socket_agent, socket_addr) = spawn_agent("socket", &["--max-shared-memory", "0"])?;
    let raw_addr = format!("unix://{}/raw.sock", dir.display());
    let _raw = Proc::spawn(
        Command::new(exe).args(["--raw-server", &raw_addr]),
        &raw_addr,
    )?;
    let raw_addr: Address = raw_addr.parse()?;
    println!(
        "| run | call | shm p50 (ms) | socket p50 (ms) | raw p50 (ms) | shm / raw | socket / raw | shm p99 (ms) | buffer p50 (ms) | buffer / raw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for run in 1..=runs {
        for (label, size, iters) in [
            ("64 MiB image", 64usize << 20, 12),
            ("1 KiB image", 1 << 10, 5_000),
        ] {
            let image = vec![0x5au8; size];
            let shm = vaccel_latencies(&shm_addr, &image, iters, 1)?;
            let socket = vaccel_latencies(&socket_addr, &image, iters, 1)?;
            let raw = raw_latencies(&raw_addr, size + REQUEST_EXTRA, iters, 1)?;
            let buffer = latencies(&shm_addr, &image, iters, 1, true)?;
            let (s, k, r) = (pct(&shm, 50.0), pct(&socket, 50.0), pct(&raw, 50.0));
            let b = pct(&buffer, 50.0);
            println!(
                "| {run} | {label} | {:.3} | {:.3} | {:.3} | {:.2}x | {:.2}x | {:.3} | {:.3} | {:.3}x |",
                s / 1e3,
                k / 1e3,
                r / 1e3,
                s / r,
                k / r,
                pct(&shm, 99.0) / 1e3,
                b / 1e3,
                b / r
            );
        }
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .context("no such status line")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?)
}
