//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;
use vaccel_core::{PluginType, Runtime, Session};
use vaccel_plugin_tflite::TflitePlugin;

/// A file under the repository's `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

/// Whether LiteRT can be loaded; prints why the calling test is skipped when not.
pub fn litert(test: &str) -> bool {
    match vaccel_plugin_tflite::litert_available() {
        Ok(_) => true,
        Err(why) => {
            // CI installs LiteRT and sets this: a missing runtime must fail there.
            assert!(
                std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
                "{test}: LiteRT is required (VACCEL_REQUIRE_BACKENDS) but missing: {why}"
            );
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

/// A runtime with only a tflite plugin (2 threads unless told), its run directory in a temp dir.
pub struct Fx {
    pub rt: Runtime,
    pub plugin: Arc<TflitePlugin>,
    _dir: TempDir,
}

impl Fx {
    pub fn new() -> Fx {
        Fx::with_threads(2)
    }

    pub fn with_threads(threads: usize) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Arc::new(TflitePlugin::with_threads(threads));
        let rt = Runtime::builder()
            .rundir_base(dir.path().join("run"))
            .skip_logging()
            .plugin(plugin.clone())
            .build()
            .unwrap();
        Fx {
            rt,
            plugin,
            _dir: dir,
        }
    }

    pub fn session(&self) -> Arc<Session> {
        Session::new(&self.rt, PluginType::CPU.bits()).unwrap()
    }
}

/// Native-endian f32 values of a byte buffer.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// Largest absolute difference of two equally long f32 sequences.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Reproducible bytes of f32 values in [0, 1).
pub fn pseudo_random_f32_bytes(count: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut out = Vec::with_capacity(count * 4);
    for _ in 0..count {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = (s >> 40) as f32 / (1u64 << 24) as f32;
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out
}
