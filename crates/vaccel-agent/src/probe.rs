//! Vetting clients' models in a disposable process.
//!
//! The CPU backends hand model files to native runtimes (LiteRT, onnxruntime, TensorFlow)
//! that trust them: a malformed `.tflite` can crash LiteRT while it compiles the model, and
//! with it every client of the agent. So before the agent's own plugins see a model a
//! client registered, a *probe process* (this binary, run as `vaccel-rpc-agent
//! --probe-model ...`) builds a runtime with the same plugins, loads the model with every
//! plugin that recognizes its format and runs it once on zero inputs
//! ([`vaccel::plugin::Plugin::probe_model`]). When the probe dies of a signal or hangs, the
//! registration fails with `VACCEL_EINVAL` naming the plugin, and the agent never loads the
//! model. Errors the probe reports are not held against the model: the real call reports them
//! to the client as usual.
//!
//! Verdicts are kept per content: a keyed hash of the files' bytes and of the plugins that
//! recognize them, so a model registered again (each session of an application, each replica
//! of a job, the same bytes under another name) is probed once. A one-file model's name is not
//! part of it; in a directory or a set of files the names are (they say which file a plugin
//! loads). A model that recognizes no plugin is not probed at all.
//!
//! Probes are bounded: at most `running` at once, at most `queued` registrations waiting for
//! one (`--max-concurrent-probes`, `--max-queued-probes`); beyond the queue a registration is
//! refused as busy ([`VetError::Busy`]). Registrations of the same bytes while they are being
//! probed wait for that probe's verdict instead of starting another.
//!
//! What it does not catch: a model that loads and runs on zeros but crashes its runtime on
//! particular inputs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use vaccel::{Config, Resource, ResourceType, Runtime, Session};

/// The first argument that makes the agent binary a probe process.
pub const PROBE_FLAG: &str = "--probe-model";

/// How long a probe may take before the model is rejected.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Verdicts kept at most; beyond, the oldest are forgotten (probed again if seen again).
const MAX_VERDICTS: usize = 16 * 1024;

/// Why a model was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VetError {
    /// The probe crashed or hung: the model must not be loaded. The message says why.
    #[error("{0}")]
    Rejected(String),
    /// As many probes as allowed are running and the queue is full: retry later.
    #[error(
        "model probes busy: {running} running and {queued} waiting (the most allowed); \
         retry later, or raise --max-concurrent-probes/--max-queued-probes"
    )]
    Busy {
        /// Probes running.
        running: usize,
        /// Registrations waiting.
        queued: usize,
    },
    /// The model's files could not be read for hashing.
    #[error("reading the model to vet it: {0}")]
    Read(String),
}

/// Counters of the probes, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeStats {
    /// Probe processes run.
    pub run: u64,
    /// Vettings answered by a verdict already known (or being reached) for the same bytes.
    pub cached: u64,
    /// Registrations refused because the probe queue was full.
    pub busy: u64,
    /// Registrations that waited in the queue for a probe slot.
    pub queued: u64,
    /// Probes running now.
    pub running_now: usize,
    /// Registrations waiting now.
    pub queued_now: usize,
}

/// A content key: total length and two independently keyed hashes.
type Key = (u64, u64, u64);

#[derive(Debug, Clone)]
enum Verdict {
    /// A probe of these bytes is running.
    Pending,
    Done(Result<(), String>),
}

#[derive(Debug, Default)]
struct State {
    verdicts: HashMap<Key, Verdict>,
    /// Insertion order of finished verdicts, to forget the oldest.
    order: std::collections::VecDeque<Key>,
    running: usize,
    queued: usize,
}

#[derive(Debug, Default)]
struct Counters {
    run: AtomicU64,
    cached: AtomicU64,
    busy: AtomicU64,
    queued: AtomicU64,
}

/// Vets models in probe processes; see the module docs.
#[derive(Debug)]
pub struct ModelProbe {
    program: PathBuf,
    timeout: Duration,
    max_running: usize,
    max_queued: usize,
    hashers: (RandomState, RandomState),
    state: Mutex<State>,
    changed: Condvar,
    counters: Counters,
}

/// What [`ModelProbe::admit`] decided.
enum Admission<'a> {
    /// Run the probe in this slot.
    Probe(Slot<'a>),
    /// The verdict on these bytes.
    Known(Result<(), String>),
}

/// A running probe's slot: given back (and waiters woken) however the probe ends.
struct Slot<'a> {
    probe: &'a ModelProbe,
    key: Key,
    verdict: Option<Result<(), String>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.probe.lock();
        state.running = state.running.saturating_sub(1);
        match self.verdict.take() {
            Some(v) => {
                if state.order.len() >= MAX_VERDICTS
                    && let Some(old) = state.order.pop_front()
                {
                    state.verdicts.remove(&old);
                }
                state.verdicts.insert(self.key, Verdict::Done(v));
                state.order.push_back(self.key);
            }
            None => {
                state.verdicts.remove(&self.key);
            }
        }
        drop(state);
        self.probe.changed.notify_all();
    }
}

impl ModelProbe {
    /// Probes run `program` (the agent binary) with [`PROBE_FLAG`], as many at once as there
    /// are CPUs, with a queue of [`crate::quota::DEFAULT_QUEUED_PROBES`].
    pub fn new(program: PathBuf) -> ModelProbe {
        let (max_running, max_queued) = crate::quota::QuotaArgs::default().probe_limits();
        ModelProbe {
            program,
            timeout: DEFAULT_TIMEOUT,
            max_running,
            max_queued,
            hashers: (RandomState::new(), RandomState::new()),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            counters: Counters::default(),
        }
    }

    /// The same with another time limit.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> ModelProbe {
        self.timeout = timeout;
        self
    }

    /// The same with at most `running` probes at once (at least 1) and `queued` registrations
    /// waiting for one.
    #[must_use]
    pub fn with_limits(mut self, running: usize, queued: usize) -> ModelProbe {
        self.max_running = running.max(1);
        self.max_queued = queued;
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> ProbeStats {
        let state = self.lock();
        ProbeStats {
            run: self.counters.run.load(Relaxed),
            cached: self.counters.cached.load(Relaxed),
            busy: self.counters.busy.load(Relaxed),
            queued: self.counters.queued.load(Relaxed),
            running_now: state.running,
            queued_now: state.queued,
        }
    }

    /// Vets `res` (registered, so its files exist) for `rt`'s plugins.
    pub fn vet(&self, rt: &Runtime, res: &Resource) -> Result<(), VetError> {
        let recognizers: Vec<String> = rt
            .plugin_handles()
            .iter()
            .filter(|p| p.recognizes_model(res))
            .map(|p| p.info().name.clone())
            .collect();
        if recognizers.is_empty() {
            return Ok(());
        }
        let directory = res.directory().is_ok();
        let blobs = res.blobs();
        let mut files = Vec::with_capacity(blobs.len());
        let (mut h1, mut h2) = (self.hashers.0.build_hasher(), self.hashers.1.build_hasher());
        for h in [&mut h1, &mut h2] {
            h.write_u8(u8::from(directory));
            for name in &recognizers {
                h.write(name.as_bytes());
                h.write_u8(0);
            }
        }
        // One file is its bytes, whatever its name. In a directory or a set of files, the
        // names say which file is which (what a plugin loads), so they are content too.
        let named = directory || blobs.len() > 1;
        let mut total = 0u64;
        for blob in &blobs {
            let Some(path) = blob.path() else {
                log::debug!(
                    "resource {}: blob {} has no file, not probed",
                    res.id(),
                    blob.name()
                );
                return Ok(());
            };
            if named {
                for h in [&mut h1, &mut h2] {
                    h.write(blob.name().as_bytes());
                    h.write_u8(0);
                }
            }
            let len = hash_file(path, &mut [&mut h1, &mut h2])
                .map_err(|e| VetError::Read(format!("{}: {e}", blob.name())))?;
            total = total.saturating_add(len);
            files.push((blob.name().to_owned(), path.to_path_buf()));
        }
        let key = (total, h1.finish(), h2.finish());
        let mut slot = match self.admit(key)? {
            Admission::Probe(slot) => slot,
            Admission::Known(verdict) => {
                self.counters.cached.fetch_add(1, Relaxed);
                return verdict.map_err(VetError::Rejected);
            }
        };
        self.counters.run.fetch_add(1, Relaxed);
        let start = Instant::now();
        let verdict = self.run_probe(rt.config(), rt.rundir(), directory, &files);
        log::info!(
            "Probed resource {} ({}) for {} in {:.0} ms: {}",
            res.id(),
            files.first().map_or("", |(name, _)| name.as_str()),
            recognizers.join(", "),
            start.elapsed().as_secs_f64() * 1e3,
            match &verdict {
                Ok(()) => "safe to load",
                Err(why) => why.as_str(),
            }
        );
        slot.verdict = Some(verdict.clone());
        drop(slot);
        verdict.map_err(VetError::Rejected)
    }

    /// A slot to probe `key` in, waiting in the queue if need be, or the verdict on `key` when
    /// it is known (or was reached while waiting).
    fn admit(&self, key: Key) -> Result<Admission<'_>, VetError> {
        let mut state = self.lock();
        let mut waiting = false;
        loop {
            match state.verdicts.get(&key) {
                Some(Verdict::Done(verdict)) => {
                    let verdict = verdict.clone();
                    if waiting {
                        state.queued = state.queued.saturating_sub(1);
                    }
                    return Ok(Admission::Known(verdict));
                }
                // The same bytes are being probed: wait for that verdict (not a new probe).
                Some(Verdict::Pending) => {}
                None if state.running < self.max_running => {
                    if waiting {
                        state.queued = state.queued.saturating_sub(1);
                    }
                    state.running += 1;
                    state.verdicts.insert(key, Verdict::Pending);
                    return Ok(Admission::Probe(Slot {
                        probe: self,
                        key,
                        verdict: None,
                    }));
                }
                None if !waiting => {
                    if state.queued >= self.max_queued {
                        self.counters.busy.fetch_add(1, Relaxed);
                        return Err(VetError::Busy {
                            running: state.running,
                            queued: state.queued,
                        });
                    }
                    state.queued += 1;
                    self.counters.queued.fetch_add(1, Relaxed);
                    waiting = true;
                }
                None => {}
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run_probe(
        &self,
        config: &Config,
        rundir: &std::path::Path,
        directory: bool,
        files: &[(String, PathBuf)],
    ) -> Result<(), String> {
        let mut cmd = Command::new(&self.program);
        // Its runtime directory goes inside the agent's, which is removed when the agent
        // ends: nothing is left behind by a probe that crashed.
        cmd.arg(PROBE_FLAG).arg("--rundir-base").arg(rundir);
        if directory {
            cmd.arg("--directory");
        }
        for (name, path) in files {
            cmd.arg("--blob").arg(name).arg(path);
        }
        // The probe's runtime loads the agent's plugins; the rest of the environment (the
        // backends' own variables) is inherited.
        match &config.plugins {
            Some(plugins) => cmd.env("VACCEL_PLUGINS", plugins),
            None => cmd.env_remove("VACCEL_PLUGINS"),
        };
        cmd.env_remove("VACCEL_BACKENDS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            // Not the model's fault: load it as if unprobed, but say so.
            .map_err(|e| {
                log::warn!(
                    "cannot start a model probe ({}): {e}",
                    self.program.display()
                );
            });
        let Ok(child) = child.as_mut() else {
            return Ok(());
        };
        let (status, transcript) = wait(child, self.timeout);
        // The plugin that was probing when the process ended.
        let plugin = transcript
            .lines()
            .filter_map(|l| l.strip_prefix("probe "))
            .next_back()
            .unwrap_or("a plugin")
            .to_owned();
        match status {
            Some(status) => verdict(status, &plugin),
            None => Err(format!(
                "the model was rejected: loading it with the {plugin} plugin did not finish \
                 within {:?} in a probe process",
                self.timeout
            )),
        }
    }
}

/// Feeds the file at `path` to `hashers` in chunks; its length.
fn hash_file(path: &std::path::Path, hashers: &mut [&mut dyn Hasher]) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        for h in hashers.iter_mut() {
            h.write(chunk);
        }
        total += n as u64;
    }
    for h in hashers.iter_mut() {
        h.write_u64(total);
    }
    Ok(total)
}

/// The verdict on a probe that ended with `status` while `plugin` was probing.
fn verdict(status: ExitStatus, plugin: &str) -> Result<(), String> {
    match status.signal() {
        Some(signal) => Err(format!(
            "the model was rejected: loading it crashed the {plugin} plugin's runtime in a \
             probe process (signal {signal})"
        )),
        None => Ok(()),
    }
}

/// Waits for `child` at most `timeout` (killing it then: `None`), collecting its stdout.
fn wait(child: &mut Child, timeout: Duration) -> (Option<ExitStatus>, String) {
    // The transcript is a few short lines: read it on a thread so a full pipe never blocks
    // the probe.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // A process the probe started may still hold the pipe open: do not wait for it long.
    let transcript = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    (status, transcript)
}

/// The probe process: `--probe-model --rundir-base DIR [--directory] (--blob NAME PATH)...`,
/// plugins from `VACCEL_PLUGINS`. Prints `probe <plugin>` before each plugin's probe and `ok <plugin>` or
/// `error <plugin>: <message>` after it; exits 0 unless its arguments or runtime are wrong.
pub fn probe_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    match probe(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vaccel-rpc-agent {PROBE_FLAG}: {e}");
            ExitCode::from(2)
        }
    }
}

fn probe(args: impl IntoIterator<Item = OsString>) -> Result<(), String> {
    let mut directory = false;
    let mut rundir_base = None;
    let mut files = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--directory") => directory = true,
            Some("--rundir-base") => {
                rundir_base = Some(PathBuf::from(
                    args.next().ok_or("--rundir-base needs a directory")?,
                ));
            }
            Some("--blob") => {
                let (Some(name), Some(path)) = (args.next(), args.next()) else {
                    return Err("--blob needs a name and a path".to_owned());
                };
                let name = name.into_string().map_err(|n| format!("blob name {n:?}"))?;
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("read {}: {e}", PathBuf::from(&path).display()))?;
                files.push((name, bytes::Bytes::from(bytes)));
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let mut builder = vaccel::builder().config(config).skip_logging();
    if let Some(base) = rundir_base {
        builder = builder.rundir_base(base);
    }
    let rt = builder.build().map_err(|e| e.to_string())?;
    let sess = Session::new(&rt, 0).map_err(|e| e.to_string())?;
    let res: Arc<Resource> =
        Resource::from_named_buffers(&rt, files, ResourceType::Model, directory)
            .map_err(|e| e.to_string())?;
    sess.register(&res).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for plugin in rt.plugin_handles() {
        if !plugin.recognizes_model(&res) {
            continue;
        }
        let name = &plugin.info().name;
        // Flushed before the probe: if it crashes, the agent knows whose runtime did.
        let _ = writeln!(out, "probe {name}").and_then(|()| out.flush());
        let line = match plugin.probe_model(&sess, &res) {
            Ok(()) => format!("ok {name}"),
            Err(e) => format!("error {name}: {e}"),
        };
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use vaccel::plugin::{Plugin, PluginInfo};
    use vaccel::{OpSet, PluginType};

    /// Recognizes every model, loads none: the probe program decides the verdict.
    struct Sniffer(PluginInfo);

    impl Plugin for Sniffer {
        fn info(&self) -> &PluginInfo {
            &self.0
        }
        fn ops(&self) -> OpSet {
            OpSet::of(&[])
        }
        fn recognizes_model(&self, _res: &Resource) -> bool {
            true
        }
    }

    struct Fx {
        dir: tempfile::TempDir,
        rt: Runtime,
    }

    impl Fx {
        fn new() -> Fx {
            let dir = tempfile::tempdir().unwrap();
            let sniffer = Sniffer(PluginInfo::new("sniffer", "0.1.0", PluginType::CPU));
            let rt = vaccel::builder()
                .rundir_base(dir.path())
                .skip_logging()
                .config(Config::default())
                .plugin(Arc::new(sniffer))
                .build()
                .unwrap();
            Fx { dir, rt }
        }

        /// A probe program: a shell script.
        fn program(&self, name: &str, body: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        }

        fn model(&self, bytes: &'static [u8]) -> Arc<Resource> {
            self.named("m.bin", bytes)
        }

        fn named(&self, name: &str, bytes: &'static [u8]) -> Arc<Resource> {
            let files = vec![(name.to_owned(), bytes::Bytes::from_static(bytes))];
            Resource::from_named_buffers(&self.rt, files, ResourceType::Model, false).unwrap()
        }

        /// A probe program that logs its calls to `calls` and waits for `go` to exist.
        fn gated(&self) -> (PathBuf, PathBuf, PathBuf) {
            let calls = self.dir.path().join("calls");
            let go = self.dir.path().join("go");
            let body = format!(
                "echo \"$*\" >> {}\nwhile [ ! -e {} ]; do sleep 0.01; done",
                calls.display(),
                go.display()
            );
            (self.program("gated.sh", &body), calls, go)
        }
    }

    /// Waits (bounded) until `probe` has `running` probes running and `queued` waiting.
    fn wait_for(probe: &ModelProbe, running: usize, queued: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = probe.stats();
            if (s.running_now, s.queued_now) == (running, queued) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never reached {running}/{queued}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_crashing_probe_rejects_the_model_naming_the_plugin() {
        let fx = Fx::new();
        let program = fx.program("crash.sh", "echo 'probe sniffer'\nkill -SEGV $$");
        let e = ModelProbe::new(program)
            .vet(&fx.rt, &fx.model(b"bad"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("crashed the sniffer plugin's runtime"), "{e}");
        assert!(e.contains("signal 11"), "{e}");
    }

    #[test]
    fn verdicts_are_kept_per_content() {
        let fx = Fx::new();
        let calls = fx.dir.path().join("calls");
        let body = format!("echo \"$*\" >> {}\nexit 3", calls.display());
        let probe = ModelProbe::new(fx.program("ok.sh", &body));
        // An exit code, even a failing one, is an answer: the model is accepted.
        probe.vet(&fx.rt, &fx.model(b"same")).unwrap();
        probe.vet(&fx.rt, &fx.model(b"same")).unwrap();
        probe.vet(&fx.rt, &fx.model(b"other")).unwrap();
        let log = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(log.lines().count(), 2, "{log}");
        assert!(log.contains("--probe-model --rundir-base "), "{log}");
        assert!(log.contains(" --blob m.bin "), "{log}");
    }

    #[test]
    fn the_same_bytes_under_another_name_are_probed_once() {
        let fx = Fx::new();
        let calls = fx.dir.path().join("calls");
        let body = format!("echo \"$*\" >> {}", calls.display());
        let probe = ModelProbe::new(fx.program("ok.sh", &body));
        probe.vet(&fx.rt, &fx.named("a.tflite", b"same")).unwrap();
        probe
            .vet(&fx.rt, &fx.named("renamed.bin", b"same"))
            .unwrap();
        let log = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        let s = probe.stats();
        assert_eq!((s.run, s.cached), (1, 1), "{s:?}");
    }

    #[test]
    fn probes_beyond_the_limit_wait_and_beyond_the_queue_are_busy() {
        let fx = Fx::new();
        let (program, calls, go) = fx.gated();
        let probe = ModelProbe::new(program).with_limits(1, 1);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| probe.vet(&fx.rt, &fx.model(b"one")));
            wait_for(&probe, 1, 0);
            let second = scope.spawn(|| probe.vet(&fx.rt, &fx.model(b"two")));
            wait_for(&probe, 1, 1);
            // Running and queue full: a third model is refused at once.
            let e = probe.vet(&fx.rt, &fx.model(b"three")).unwrap_err();
            assert!(
                matches!(
                    e,
                    VetError::Busy {
                        running: 1,
                        queued: 1
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().contains("--max-concurrent-probes"), "{e}");
            std::fs::write(&go, b"").unwrap();
            first.join().unwrap().unwrap();
            second.join().unwrap().unwrap();
        });
        let log = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(log.lines().count(), 2, "one after the other: {log}");
        let s = probe.stats();
        assert_eq!((s.run, s.queued, s.busy), (2, 1, 1), "{s:?}");
        assert_eq!((s.running_now, s.queued_now), (0, 0));
    }

    #[test]
    fn registrations_of_bytes_being_probed_wait_for_that_verdict() {
        let fx = Fx::new();
        let (program, calls, go) = fx.gated();
        let probe = ModelProbe::new(program).with_limits(4, 0);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| probe.vet(&fx.rt, &fx.model(b"same")));
            wait_for(&probe, 1, 0);
            let second = scope.spawn(|| probe.vet(&fx.rt, &fx.named("other", b"same")));
            std::fs::write(&go, b"").unwrap();
            first.join().unwrap().unwrap();
            second.join().unwrap().unwrap();
        });
        let log = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
    }

    #[test]
    fn a_hanging_probe_is_killed_and_rejects_the_model() {
        let fx = Fx::new();
        let program = fx.program("hang.sh", "echo 'probe sniffer'\nexec sleep 30");
        let probe = ModelProbe::new(program).with_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let e = probe
            .vet(&fx.rt, &fx.model(b"slow"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sniffer plugin did not finish within 300ms"),
            "{e}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn models_no_plugin_recognizes_are_not_probed() {
        let dir = tempfile::tempdir().unwrap();
        let rt = vaccel::builder()
            .rundir_base(dir.path())
            .skip_logging()
            .config(Config::default())
            .build()
            .unwrap();
        let files = vec![("m.bin".to_owned(), bytes::Bytes::from_static(b"x"))];
        let res = Resource::from_named_buffers(&rt, files, ResourceType::Model, false).unwrap();
        // Nothing is run: a missing program would otherwise be logged.
        ModelProbe::new(dir.path().join("missing"))
            .vet(&rt, &res)
            .unwrap();
    }

    #[test]
    fn a_probe_that_cannot_start_accepts_the_model() {
        let fx = Fx::new();
        ModelProbe::new(fx.dir.path().join("missing"))
            .vet(&fx.rt, &fx.model(b"m"))
            .unwrap();
    }

    #[test]
    fn signals_reject_and_exit_codes_do_not() {
        let status = |raw: i32| ExitStatus::from_raw(raw);
        // Raw wait statuses: exit code in the high byte, signal in the low bits.
        assert!(verdict(status(0), "tflite").is_ok());
        assert!(verdict(status(2 << 8), "tflite").is_ok());
        let e = verdict(status(11), "tflite").unwrap_err();
        assert!(e.contains("crashed the tflite plugin's runtime"), "{e}");
        assert!(e.contains("signal 11"), "{e}");
    }
}
