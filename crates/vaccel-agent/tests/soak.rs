//! A soak of the agent (issue #14): many tenants at once, each connecting, creating sessions,
//! registering blob resources, running Genops, cleaning up or just disconnecting, and
//! reconnecting, for `VACCEL_SOAK_SECS` seconds (20 by default). No call may fail, and the
//! agent's resident memory at the end stays within 64 MiB of what it was after a warm-up: a
//! leak check, not a measure of speed. Longer runs are recorded in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use vaccel_rpc::proto::vaccel::{resource as pr, session as ps};

const TENANTS: usize = 8;
/// How far resident memory may grow from the warm-up to the end.
const RSS_SLACK_KIB: u64 = 64 << 10;

static SMALL: [u8; 1024] = [1; 1024];
static MEDIUM: [u8; 64 * 1024] = [2; 64 * 1024];
static LARGE: [u8; 256 * 1024] = [3; 256 * 1024];

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    connections: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap().get_or_insert(what);
    }
}

/// A session and a resource left behind: the agent releases them when the connection closes.
fn leave_behind(c: &mut RawClient, blob: &'static [u8]) -> CallResult<u64> {
    let s: ps::CreateResponse = c.call("CreateSession", &ps::CreateRequest { flags: 0 })?;
    let _: pr::RegisterResponse = c.call(
        "RegisterResource",
        &blob_request(s.session_id, "left", blob),
    )?;
    Ok(2)
}

/// One tenant: connections one after another until `stop`, each of a few rounds.
fn tenant(agent: &vaccel_rpc::addr::Address, n: usize, stop: &AtomicBool, tally: &Tally) {
    let blobs: [&'static [u8]; 3] = [&SMALL, &MEDIUM, &LARGE];
    let mut i = n;
    while !stop.load(Ordering::Relaxed) {
        let mut c = RawClient::connect(agent);
        tally.connections.fetch_add(1, Ordering::Relaxed);
        for round in 0..1 + i % 4 {
            match tenant_round(&mut c, blobs[(i + round) % 3]) {
                Ok(calls) => tally.calls.fetch_add(calls, Ordering::Relaxed),
                Err(st) => {
                    tally.error(format!("tenant {n}, connection {i}: {st:?}"));
                    break;
                }
            };
        }
        // Every other connection ends without cleaning up.
        if i % 2 == 1 {
            match leave_behind(&mut c, blobs[i % 3]) {
                Ok(calls) => tally.calls.fetch_add(calls, Ordering::Relaxed),
                Err(st) => {
                    tally.error(format!("tenant {n}, connection {i}: {st:?}"));
                    0
                }
            };
        }
        i += TENANTS;
    }
}

#[test]
fn many_tenants_for_a_while_no_errors_no_growth() {
    let secs: u64 = std::env::var("VACCEL_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let run = Duration::from_secs(secs.max(2));
    // TCP: every connection is a tenant of its own. A connection's release follows its close,
    // so the cap per address could briefly count closed ones: no cap here.
    let mut agent = AgentProc::tcp(&["--max-connections-per-client", "0"]);
    let pid = agent.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let threads: Vec<_> = (0..TENANTS)
        .map(|n| {
            let (address, stop, tally) = (agent.address.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || tenant(&address, n, &stop, &tally))
        })
        .collect();

    // Warm-up: a tenth of the run (at least 2 s), then the resident memory to compare with.
    std::thread::sleep((run / 10).max(Duration::from_secs(2)).min(run));
    let warm_rss = proc_status_kib(pid, "VmRSS");
    let warm_calls = tally.calls.load(Ordering::Relaxed);
    std::thread::sleep(run.saturating_sub(start.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if t.join().is_err() {
            tally.error("a tenant thread panicked".into());
        }
    }
    let elapsed = start.elapsed();
    still_running(&mut agent);
    served(&agent);

    // What the last connections held is released as the agent sees them close: wait for the
    // resident memory to come back within bounds, up to a deadline.
    let bound = warm_rss + RSS_SLACK_KIB;
    let deadline = Instant::now() + DEADLINE;
    let mut end_rss = proc_status_kib(pid, "VmRSS");
    while end_rss > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        end_rss = proc_status_kib(pid, "VmRSS");
    }
    let (calls, errors) = (
        tally.calls.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {TENANTS} tenants, {:.0} s, {} connections, {calls} calls ({warm_calls} in the \
         warm-up), {errors} errors; agent VmRSS {} MiB after warm-up, {} MiB at the end, VmHWM \
         {} MiB",
        elapsed.as_secs_f64(),
        tally.connections.load(Ordering::Relaxed),
        warm_rss >> 10,
        end_rss >> 10,
        proc_status_kib(pid, "VmHWM") >> 10,
    );
    if errors != 0 {
        let first = tally.first_error.lock().unwrap().clone();
        agent.stop_and_report(&format!("{errors} errors; the first: {first:?}"));
    }
    if end_rss > bound {
        agent.stop_and_report(&format!(
            "resident memory grew from {warm_rss} KiB after the warm-up to {end_rss} KiB"
        ));
    }
    assert!(calls > warm_calls, "calls made after the warm-up");
}
