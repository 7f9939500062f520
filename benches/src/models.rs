//! `model-bench`: real model runs on the CPU backends, called in-process (`VACCEL_PLUGINS=cpu`)
//! and through a `vaccel-rpc-agent` on a unix socket (`rpc` plugin), alternating the two in
//! the same run so that both see the same machine state. Prints a markdown table of median
//! and p90 latencies, the agent's overhead over local, the CPU time per call (all threads of
//! this process for a local call; for an agent call, the agent's threads and this process's
//! client side), and the minor page faults per call of the process doing the work (this one
//! for local calls, the agent for agent calls): a call that re-faults its buffers every time
//! shows up there. The CPU columns tell work from waiting: an agent call that takes longer
//! than a local one but no more CPU lost its time to scheduling or the transport.
//!
//! `cargo build --release -p vaccel-bench -p vaccel-agent && target/release/model-bench [iters]`
//! (the tflite plugin needs LiteRT: `./scripts/runtimes.sh`); `VACCEL_BENCH_ONLY=<text>` runs
//! only the cases whose name contains it.

// A report printer: its output is the result.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

mod proc;
use proc::Proc;

use anyhow::{Context, Result, bail};
use vaccel::{Config, Resource, ResourceType, Runtime, Session};
use vaccel_plugin_rpc::RpcPlugin;
use vaccel_rpc::addr::Address;

/// One measured call.
struct Case {
    name: &'static str,
    /// A model to register first (fixture path), if any.
    model: Option<&'static [&'static str]>,
    image: &'static str,
    op: Op,
}

#[derive(Clone, Copy)]
enum Op {
    Detect,
    Segment,
    Classify,
}

const CASES: &[Case] = &[
    Case {
        name: "detect: face detection short range (tflite, default model)",
        model: None,
        image: "images/astronaut.jpg",
        op: Op::Detect,
    },
    Case {
        name: "segment: selfie segmentation (tflite, default model)",
        model: None,
        image: "images/astronaut.jpg",
        op: Op::Segment,
    },
    Case {
        name: "classify: MobileNetV2 dog breeds (tflite, registered model)",
        model: Some(&[
            "models/dog_breeds/dog_breeds.tflite",
            "models/dog_breeds/labels.txt",
        ]),
        image: "images/chelsea.jpg",
        op: Op::Classify,
    },
    Case {
        name: "detect: face detection short range (onnx, registered model)",
        model: Some(&["models/face_detection_short_range.onnx"]),
        image: "images/astronaut.jpg",
        op: Op::Detect,
    },
];

fn main() -> Result<()> {
    let iters: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("iterations must be a number")?
        .unwrap_or(200);
    let exe = std::env::current_exe()?;
    let agent_bin = exe.with_file_name("vaccel-rpc-agent");
    if !agent_bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p vaccel-agent`",
            agent_bin.display()
        );
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let dir = std::env::temp_dir().join(format!("vaccel-model-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let addr = format!("unix://{}/agent.sock", dir.display());
    let _agent = Proc::spawn(
        Command::new(&agent_bin).args(["-a", &addr, "--vaccel-config", "plugins=cpu"]),
        &addr,
    )?;
    let local = vaccel::builder()
        .skip_logging()
        .config(Config::default().with_plugins("cpu").with_log_level(None))
        .rundir_base(&dir)
        .build()?;
    let remote = vaccel::builder()
        .skip_logging()
        .config(Config::default().with_log_level(None))
        .rundir_base(&dir)
        .plugin(Arc::new(RpcPlugin::with_address(addr.parse::<Address>()?)))
        .build()?;

    println!(
        "| call | local median | local p90 | agent median | agent p90 | agent overhead | CPU/call local | CPU/call agent + client | faults/call local, agent |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let only = std::env::var("VACCEL_BENCH_ONLY").unwrap_or_default();
    let agent_pid = _agent.child.id();
    let agent_stat = format!("/proc/{agent_pid}/stat");
    let agent_tasks = format!("/proc/{agent_pid}/task");
    for case in CASES.iter().filter(|c| c.name.contains(&only)) {
        let l = Runner::new(&local, case, &fixtures)?;
        let r = Runner::new(&remote, case, &fixtures)?;
        let (mut lt, mut rt) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            l.call()?;
            r.call()?;
        }
        let (mut local_faults, mut agent_faults) = (0u64, 0u64);
        let (mut local_cpu, mut agent_cpu, mut client_cpu) = (0u64, 0u64, 0u64);
        for _ in 0..iters {
            let before = minor_faults("/proc/self/stat");
            let cpu = own_cpu_ns();
            lt.push(l.timed()?);
            local_cpu += own_cpu_ns().saturating_sub(cpu);
            local_faults += minor_faults("/proc/self/stat").saturating_sub(before);
            let before = minor_faults(&agent_stat);
            let (cpu, client) = (cpu_ns(&agent_tasks), own_cpu_ns());
            rt.push(r.timed()?);
            client_cpu += own_cpu_ns().saturating_sub(client);
            agent_cpu += cpu_ns(&agent_tasks).saturating_sub(cpu);
            agent_faults += minor_faults(&agent_stat).saturating_sub(before);
        }
        let (lm, rm) = (pct(&mut lt, 0.5), pct(&mut rt, 0.5));
        let per_call = |n: u64| n as f64 / iters.max(1) as f64;
        let ms = |ns: u64| per_call(ns) / 1e6;
        println!(
            "| {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:+.1}% | {:.3} ms | {:.3} + {:.3} ms | {:.0}, {:.0} |",
            case.name,
            lm,
            pct(&mut lt, 0.9),
            rm,
            pct(&mut rt, 0.9),
            (rm / lm - 1.0) * 100.0,
            ms(local_cpu),
            ms(agent_cpu),
            ms(client_cpu),
            per_call(local_faults),
            per_call(agent_faults),
        );
    }
    drop(local);
    drop(remote);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct Runner {
    sess: Arc<Session>,
    _model: Option<Arc<Resource>>,
    image: Vec<u8>,
    op: Op,
}

impl Runner {
    fn new(rt: &Runtime, case: &Case, fixtures: &Path) -> Result<Runner> {
        let sess = Session::new(rt, 0)?;
        let model = match case.model {
            Some(files) => {
                let paths: Vec<String> = files
                    .iter()
                    .map(|f| fixtures.join(f).display().to_string())
                    .collect();
                let res = Resource::from_paths(rt, &paths, ResourceType::Model)?;
                sess.register(&res)?;
                Some(res)
            }
            None => None,
        };
        let image_path: PathBuf = fixtures.join(case.image);
        let image =
            std::fs::read(&image_path).with_context(|| format!("read {}", image_path.display()))?;
        Ok(Runner {
            sess,
            _model: model,
            image,
            op: case.op,
        })
    }

    fn call(&self) -> Result<()> {
        let (mut text, mut name) = ([0u8; 512], [0u8; 512]);
        match self.op {
            Op::Detect => {
                let found = self.sess.image_detect_objects(&self.image, &mut name)?;
                if found.is_empty() {
                    bail!("detection found nothing");
                }
            }
            Op::Segment => self.sess.image_segment(&self.image, &mut name)?,
            Op::Classify => self
                .sess
                .image_classify(&self.image, &mut text, &mut name)?,
        }
        Ok(())
    }

    /// Milliseconds of one call.
    fn timed(&self) -> Result<f64> {
        let t = Instant::now();
        self.call()?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }
}

fn pct(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(i).copied().unwrap_or(f64::NAN)
}

/// Minor page faults so far of the process whose `/proc/<pid>/stat` is `stat` (0 if unreadable).
fn minor_faults(stat: &str) -> u64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the parenthesised command name: state is the first, minflt the eighth.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time so far, in ns, of all the threads of this process (exact to the call, unlike
/// `schedstat`, which lags for a running thread).
fn own_cpu_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// CPU time so far, in ns, of all the threads under `tasks` (`/proc/<pid>/task`): the sum of
/// the first field of each thread's `schedstat` (time spent running). Threads that ended are
/// not counted; the agent keeps its. Read between calls, while the agent waits for the next
/// one, so its figures are settled.
fn cpu_ns(tasks: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir(tasks) else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
