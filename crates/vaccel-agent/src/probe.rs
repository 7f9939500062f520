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
//! Verdicts are kept per content (a keyed hash of every file's name and bytes), so a model
//! registered again (each session of an application, each replica of a job) is probed once.
//! A model that recognizes no plugin is not probed at all.
//!
//! What it does not catch: a model that loads and runs on zeros but crashes its runtime on
//! particular inputs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use vaccel::{Config, Resource, ResourceType, Runtime, Session};

/// The first argument that makes the agent binary a probe process.
pub const PROBE_FLAG: &str = "--probe-model";

/// How long a probe may take before the model is rejected.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Vets models in probe processes; see the module docs.
#[derive(Debug)]
pub struct ModelProbe {
    program: PathBuf,
    timeout: Duration,
    hasher: RandomState,
    /// Verdicts by content key; `Err` holds the rejection message.
    verdicts: Mutex<HashMap<(u64, u64), Result<(), String>>>,
}

impl ModelProbe {
    /// Probes run `program` (the agent binary) with [`PROBE_FLAG`].
    pub fn new(program: PathBuf) -> ModelProbe {
        ModelProbe {
            program,
            timeout: DEFAULT_TIMEOUT,
            hasher: RandomState::new(),
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// The same with another time limit.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> ModelProbe {
        self.timeout = timeout;
        self
    }

    /// Vets `res` (registered, so its files exist) for `rt`'s plugins. `Err` is the message
    /// of a rejection.
    pub fn vet(&self, rt: &Runtime, res: &Resource) -> Result<(), String> {
        let recognizers: Vec<String> = rt
            .plugin_handles()
            .iter()
            .filter(|p| p.recognizes_model(res))
            .map(|p| p.info().name.clone())
            .collect();
        if recognizers.is_empty() {
            return Ok(());
        }
        let blobs = res.blobs();
        let mut files = Vec::with_capacity(blobs.len());
        let mut hash = self.hasher.build_hasher();
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
            let bytes = blob.read().map_err(|e| e.to_string())?;
            blob.name().hash(&mut hash);
            bytes.hash(&mut hash);
            total += bytes.len() as u64;
            files.push((blob.name().to_owned(), path.to_path_buf()));
        }
        let key = (total, hash.finish());
        if let Some(verdict) = self.lock().get(&key) {
            return verdict.clone();
        }
        let start = Instant::now();
        let verdict = self.run_probe(rt.config(), rt.rundir(), res.directory().is_ok(), &files);
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
        self.lock().insert(key, verdict.clone());
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), Result<(), String>>> {
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner)
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
            let files = vec![("m.bin".to_owned(), bytes::Bytes::from_static(bytes))];
            Resource::from_named_buffers(&self.rt, files, ResourceType::Model, false).unwrap()
        }
    }

    #[test]
    fn a_crashing_probe_rejects_the_model_naming_the_plugin() {
        let fx = Fx::new();
        let program = fx.program("crash.sh", "echo 'probe sniffer'\nkill -SEGV $$");
        let e = ModelProbe::new(program)
            .vet(&fx.rt, &fx.model(b"bad"))
            .unwrap_err();
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
    fn a_hanging_probe_is_killed_and_rejects_the_model() {
        let fx = Fx::new();
        let program = fx.program("hang.sh", "echo 'probe sniffer'\nexec sleep 30");
        let probe = ModelProbe::new(program).with_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let e = probe.vet(&fx.rt, &fx.model(b"slow")).unwrap_err();
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
