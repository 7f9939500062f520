//! The agent's logger: upstream's env_logger format
//! (`[2025-04-11T20:05:14Z INFO  vaccel_rpc_agent] vAccel RPC agent started`), with the agent's
//! own lines filtered by `RUST_LOG` (default `info`) and the runtime's and plugins' lines by the
//! vAccel log level (`VACCEL_LOG_LEVEL` / `log_level`), optionally into the vAccel log file.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use log::{LevelFilter, Log, Metadata, Record};
use vaccel::LogLevel;

/// Whether a log target belongs to the vAccel runtime or a plugin (not to the agent or its
/// RPC layer).
pub fn is_runtime_target(target: &str) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    crate_name == "vaccel" || crate_name == "vaccel_core" || crate_name.starts_with("vaccel_plugin")
}

struct AgentLogger {
    agent: env_logger::Logger,
    runtime: env_logger::Logger,
}

impl Log for AgentLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if is_runtime_target(metadata.target()) {
            self.runtime.enabled(metadata)
        } else {
            self.agent.enabled(metadata)
        }
    }

    fn log(&self, record: &Record<'_>) {
        if is_runtime_target(record.target()) {
            self.runtime.log(record);
        } else {
            self.agent.log(record);
        }
    }

    fn flush(&self) {
        self.agent.flush();
        self.runtime.flush();
    }
}

/// Installs the logger. `vaccel_level` filters the runtime's lines (`None`: none), which go to
/// `log_file` when given, else to stderr with the agent's.
pub fn init(vaccel_level: Option<LogLevel>, log_file: Option<&Path>) -> io::Result<()> {
    let agent =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let mut runtime = env_logger::Builder::new();
    runtime.filter_level(vaccel::logging::level_filter(vaccel_level));
    if let Some(path) = log_file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("log file {}: {e}", path.display())))?;
        runtime.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let runtime = runtime.build();
    let max = agent.filter().max(runtime.filter());
    log::set_boxed_logger(Box::new(AgentLogger { agent, runtime }))
        .map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(max.max(LevelFilter::Error));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_targets() {
        for t in [
            "vaccel_core::session",
            "vaccel_core",
            "vaccel_plugin_noop",
            "vaccel_plugin_rpc::client",
            "vaccel",
        ] {
            assert!(is_runtime_target(t), "{t}");
        }
        for t in [
            "vaccel_rpc_agent",
            "vaccel_rpc_agent::session",
            "vaccel_rpc::server",
            "vaccel_rpc::transport",
            "vaccel_agent",
        ] {
            assert!(!is_runtime_target(t), "{t}");
        }
    }
}
