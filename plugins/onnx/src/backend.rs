//! Which engine runs a model: onnxruntime where it is installed and takes the model, tract
//! otherwise (`VACCEL_ONNX_ENGINE`), and with how many threads (`VACCEL_ONNX_THREADS`).

use tract_onnx::pb::ModelProto;
use vaccel_core::{Error, Result};
use vaccel_vision::{Engine, EngineError, Tensor, TensorView};

use crate::engine::TractEngine;
use crate::error::{OnnxError, chain};
use crate::onnxruntime::{self, OrtEngine};

/// `auto` (default), `onnxruntime` or `tract`: see [`EngineChoice`].
pub const ENV_ENGINE: &str = "VACCEL_ONNX_ENGINE";
/// onnxruntime's intra-op threads per model (a positive integer); default 1, like tract: the
/// image models here run in 1-4 ms on one core, and calls of several clients (or sessions)
/// then run in parallel instead of contending for the same cores. Raise it for large models.
pub const ENV_THREADS: &str = "VACCEL_ONNX_THREADS";

/// Which engine runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// onnxruntime when the library is found and loads the model, else tract.
    Auto,
    /// onnxruntime only: a model it cannot load, or a missing library, is an error.
    OnnxRuntime,
    /// tract only (pure Rust; nothing loaded at run time).
    Tract,
}

impl EngineChoice {
    /// Parses a value of [`ENV_ENGINE`].
    pub fn parse(value: &str) -> Option<EngineChoice> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(EngineChoice::Auto),
            "onnxruntime" | "ort" => Some(EngineChoice::OnnxRuntime),
            "tract" => Some(EngineChoice::Tract),
            _ => None,
        }
    }
}

/// How the plugin runs models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The engine.
    pub engine: EngineChoice,
    /// onnxruntime's intra-op threads per model.
    pub threads: usize,
}

impl Default for Settings {
    /// [`EngineChoice::Auto`] on one thread per model.
    fn default() -> Self {
        Settings {
            engine: EngineChoice::Auto,
            threads: 1,
        }
    }
}

impl Settings {
    /// From [`ENV_ENGINE`] and [`ENV_THREADS`]; a malformed value is a configuration error.
    pub fn from_env() -> Result<Settings> {
        let engine = match std::env::var(ENV_ENGINE) {
            Ok(v) => EngineChoice::parse(&v).ok_or(Error::Config {
                key: ENV_ENGINE.to_owned(),
                value: v,
                reason: "auto, onnxruntime or tract",
            })?,
            Err(_) => EngineChoice::Auto,
        };
        let threads = match std::env::var(ENV_THREADS) {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(Error::Config {
                        key: ENV_THREADS.to_owned(),
                        value: v,
                        reason: "a positive integer",
                    });
                }
            },
            _ => 1,
        };
        Ok(Settings { engine, threads })
    }

    /// Whether models go to onnxruntime first (the library is loaded on the first call).
    pub(crate) fn prefers_onnxruntime(&self) -> bool {
        match self.engine {
            EngineChoice::Tract => false,
            EngineChoice::OnnxRuntime => true,
            EngineChoice::Auto => onnxruntime::runtime().is_ok(),
        }
    }
}

/// A loaded model on one of the engines.
#[derive(Debug)]
pub enum AnyEngine {
    /// On tract.
    Tract(TractEngine),
    /// On onnxruntime.
    OnnxRuntime(OrtEngine),
}

impl AnyEngine {
    /// Loads a model (its bytes and their decoded form) as `settings` say.
    pub fn load(
        settings: &Settings,
        bytes: &[u8],
        proto: &ModelProto,
    ) -> std::result::Result<AnyEngine, OnnxError> {
        let tract = || TractEngine::from_proto(proto).map(AnyEngine::Tract);
        match settings.engine {
            EngineChoice::Tract => tract(),
            EngineChoice::OnnxRuntime => {
                let rt =
                    onnxruntime::runtime().map_err(|why| OnnxError::Unavailable(why.to_owned()))?;
                OrtEngine::from_bytes(rt, bytes, settings.threads).map(AnyEngine::OnnxRuntime)
            }
            EngineChoice::Auto => match onnxruntime::runtime() {
                Ok(rt) => match OrtEngine::from_bytes(rt, bytes, settings.threads) {
                    Ok(engine) => Ok(AnyEngine::OnnxRuntime(engine)),
                    Err(e) => {
                        log::info!("onnx: {}; running the model on tract", chain(&e));
                        tract()
                    }
                },
                Err(_) => tract(),
            },
        }
    }

    /// The engine's name, for logs: `tract` or `onnxruntime`.
    pub fn name(&self) -> &'static str {
        match self {
            AnyEngine::Tract(_) => "tract",
            AnyEngine::OnnxRuntime(_) => "onnxruntime",
        }
    }
}

impl Engine for AnyEngine {
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            AnyEngine::Tract(e) => e.input_shapes(),
            AnyEngine::OnnxRuntime(e) => e.input_shapes(),
        }
    }

    fn output_shapes(&self) -> Vec<Vec<usize>> {
        match self {
            AnyEngine::Tract(e) => e.output_shapes(),
            AnyEngine::OnnxRuntime(e) => e.output_shapes(),
        }
    }

    fn run(&self, inputs: &[TensorView<'_>]) -> std::result::Result<Vec<Tensor>, EngineError> {
        match self {
            AnyEngine::Tract(e) => e.run(inputs),
            AnyEngine::OnnxRuntime(e) => e.run(inputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names() {
        assert_eq!(EngineChoice::parse("auto"), Some(EngineChoice::Auto));
        assert_eq!(EngineChoice::parse(""), Some(EngineChoice::Auto));
        assert_eq!(
            EngineChoice::parse(" ONNXRuntime "),
            Some(EngineChoice::OnnxRuntime)
        );
        assert_eq!(EngineChoice::parse("ort"), Some(EngineChoice::OnnxRuntime));
        assert_eq!(EngineChoice::parse("tract"), Some(EngineChoice::Tract));
        assert_eq!(EngineChoice::parse("tensorrt"), None);
    }
}
