//! The `onnx` CPU plugin: vAccel's image operations (classify, detect, segment, pose, depth) on
//! ONNX models, run by onnxruntime where it is installed and by
//! [tract](https://github.com/sonos/tract), in pure Rust, otherwise.
//!
//! # Engines
//!
//! `VACCEL_ONNX_ENGINE` ([`Settings::from_env`]) picks them:
//! * `auto` (default): onnxruntime when its library is found (see [`onnxruntime`] for where
//!   it is looked for; `./scripts/runtimes.sh` installs it) and it loads the model, else tract.
//!   A model onnxruntime refuses (an input or output that is not float32, an operator it
//!   lacks) runs on tract.
//! * `onnxruntime`: onnxruntime only; a missing library or a model it refuses is an error.
//! * `tract`: tract only; nothing is loaded at run time.
//!
//! onnxruntime gives the reference results (it is the reference runtime) at its own speed;
//! tract is within 1e-4 of the exact result and 2-3x slower on these models (figures in
//! `BENCHMARKS.md`). `VACCEL_ONNX_THREADS` sets onnxruntime's threads per model (default 1,
//! as tract: small models gain little from more, and concurrent calls then use the cores). onnxruntime is C++ parsing untrusted models: it took 3000
//! randomly corrupted models without a crash here, but `tract` is the choice that keeps model
//! parsing in safe Rust.
//!
//! vAccel has no ONNX operation family, so ONNX models serve the image ops: a session's model is
//! the first `MODEL` resource registered with it whose first file is ONNX (labels: another file
//! of that resource named `*.txt`, one per line). A session whose models are all of other
//! formats is declined, so the runtime tries the next plugin (e.g. `tflite`). Without any model,
//! detection runs a bundled face detector, segmentation a bundled selfie segmenter and
//! classification a bundled ImageNet-1k classifier (EfficientNet-Lite0, with upstream's
//! `imagenet.txt` labels: the banana of upstream's `example.jpg` comes back as `banana`); pose
//! and depth need a registered model. Pre-processing, decoding and result images come from
//! [`vaccel_vision`]; the result image is written into the session's directory.
//!
//! ```no_run
//! # fn main() -> vaccel_core::Result<()> {
//! use std::sync::Arc;
//! use vaccel_core::{PluginType, Runtime, Session};
//! use vaccel_plugin_onnx::OnnxPlugin;
//!
//! let rt = Runtime::builder()
//!     .skip_logging()
//!     .plugin(Arc::new(OnnxPlugin::new()))
//!     .build()?;
//! let sess = Session::new(&rt, PluginType::CPU.bits())?;
//! let image = std::fs::read("astronaut.jpg").expect("image");
//! let mut name = [0u8; 256];
//! for face in sess.image_detect_objects(&image, &mut name)? {
//!     println!("{}", face.display_line());
//! }
//! # Ok(()) }
//! ```
//!
//! Parsed and optimised models are cached: per session and resource for registered models
//! (dropped when the resource is unregistered or the session released), for the life of the
//! process for the bundled ones. Models are untrusted input: see [`engine`] for what is checked.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::sync::Arc;

use vaccel_core::plugin::{Plugin, PluginInfo};
use vaccel_core::{
    BundledPlugin, Detection, Error, OpSet, OpType, PluginType, Resource, Result, Session,
    VACCEL_VERSION,
};
use vaccel_vision::{Output, Task};

pub mod backend;
pub mod engine;
mod error;
mod models;
pub mod onnxruntime;
mod rewrite;

pub use backend::{AnyEngine, EngineChoice, Settings};
pub use engine::{TractEngine, decode, sniff};
pub use error::OnnxError;
pub use models::Bundled;
pub use onnxruntime::OrtEngine;

use models::{Model, ModelCache};

/// The operations this plugin implements.
pub const OPS: [OpType; 5] = [
    OpType::ImageClassify,
    OpType::ImageDetect,
    OpType::ImageSegment,
    OpType::ImagePose,
    OpType::ImageDepth,
];

/// The plugin name.
pub const NAME: &str = "onnx";

/// The onnx plugin: name `onnx`, type `CPU`, the ops in [`OPS`].
#[derive(Debug)]
pub struct OnnxPlugin {
    info: PluginInfo,
    settings: Settings,
    models: ModelCache,
}

impl Default for OnnxPlugin {
    fn default() -> Self {
        OnnxPlugin::new()
    }
}

impl OnnxPlugin {
    /// The plugin with the default [`Settings`] (onnxruntime where available, else tract;
    /// every core), and an empty model cache.
    pub fn new() -> Self {
        OnnxPlugin::with_settings(Settings::default())
    }

    /// The plugin running models as `settings` say.
    pub fn with_settings(settings: Settings) -> Self {
        OnnxPlugin {
            info: PluginInfo::new(NAME, VACCEL_VERSION, PluginType::CPU),
            settings,
            models: ModelCache::new(settings),
        }
    }

    /// How this plugin runs models.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// How many registered models this plugin has parsed so far (each once per session and
    /// resource, however many calls use it).
    pub fn models_loaded(&self) -> usize {
        self.models.loads()
    }

    /// The model serving `task` in `sess`: its registered ONNX model, else the bundled one.
    fn model(&self, sess: &Session, task: Task) -> Result<Arc<Model>> {
        if let Some(model) = self.models.for_session(sess)? {
            return Ok(model);
        }
        match Bundled::for_task(task) {
            Some(bundled) => bundled.model(&self.settings),
            None => Err(Error::declined(
                NAME,
                format!("{task:?} needs a registered ONNX model (none is bundled for it)"),
            )),
        }
    }

    fn serve(&self, sess: &Session, task: Task, image: &[u8]) -> Result<Output> {
        let model = self.model(sess, task)?;
        log::debug!(
            "onnx: session {} {task:?} on {} ({})",
            sess.id(),
            model.origin,
            model.engine.name()
        );
        vaccel_vision::run(
            task,
            &model.engine,
            model.labels.as_deref(),
            image,
            sess.rundir(),
        )
        .map_err(|e| vaccel_vision::plugin::to_core(e, NAME, &model.origin))
    }
}

/// The descriptor the `vaccel` facade registers, so `VACCEL_PLUGINS=onnx` selects this plugin.
pub fn bundled() -> BundledPlugin {
    BundledPlugin {
        name: NAME,
        create: |_| Ok(Arc::new(OnnxPlugin::with_settings(Settings::from_env()?))),
    }
}

impl Plugin for OnnxPlugin {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn ops(&self) -> OpSet {
        OpSet::of(&OPS)
    }

    fn recognizes_model(&self, res: &Resource) -> bool {
        self.models.recognizes(res)
    }

    fn probe_model(&self, _sess: &Session, res: &Resource) -> Result<()> {
        // 64 Mi values: 256 MiB of zeros at most.
        self.models.probe(res, 64 << 20)
    }

    fn session_release(&self, sess: &Session) -> Result<()> {
        self.models.forget_session(sess.id());
        Ok(())
    }

    fn resource_unregister(&self, res: &Resource, sess: &Session) -> Result<()> {
        self.models.forget_resource(sess.id(), res.id());
        Ok(())
    }

    fn image_classify(
        &self,
        sess: &Session,
        image: &[u8],
        out_text: &mut [u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        vaccel_vision::plugin::classify(|t| self.serve(sess, t, image), out_text, out_imgname)
    }

    fn image_op(
        &self,
        sess: &Session,
        op: OpType,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<()> {
        vaccel_vision::plugin::image_op(self, op, |t| self.serve(sess, t, image), out_imgname)
    }

    fn image_detect_objects(
        &self,
        sess: &Session,
        image: &[u8],
        out_imgname: &mut [u8],
    ) -> Result<Vec<Detection>> {
        vaccel_vision::plugin::detect_objects(|t| self.serve(sess, t, image), out_imgname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_models;
    use bytes::Bytes;
    use vaccel_core::arg::write_c_string;
    use vaccel_core::{Blob, ErrorCode, ResourceType, Runtime};

    fn runtime() -> (tempfile::TempDir, Arc<OnnxPlugin>, Runtime) {
        let dir = tempfile::tempdir().unwrap();
        // tract: these tests check its messages; tests/image_ops.rs runs both engines.
        let plugin = Arc::new(OnnxPlugin::with_settings(Settings {
            engine: EngineChoice::Tract,
            threads: 1,
        }));
        let rt = Runtime::builder()
            .skip_logging()
            .rundir_base(dir.path())
            .plugin(Arc::clone(&plugin) as Arc<dyn Plugin>)
            .build()
            .unwrap();
        (dir, plugin, rt)
    }

    fn model_buf(rt: &Runtime, bytes: Vec<u8>, name: &str) -> Arc<Resource> {
        Resource::from_buf(rt, bytes, ResourceType::Model, Some(name), true).unwrap()
    }

    /// The first bytes of a TFLite flatbuffer.
    fn tflite_bytes() -> Vec<u8> {
        let mut b = b"\x1c\x00\x00\x00TFL3".to_vec();
        b.resize(64, 0);
        b
    }

    #[test]
    fn registered_models_are_parsed_once_and_dropped_with_their_registration() {
        let (_dir, plugin, rt) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        let res = model_buf(&rt, test_models::affine(), "affine.onnx");
        sess.register(&res).unwrap();
        for _ in 0..3 {
            let model = plugin.models.for_session(&sess).unwrap().unwrap();
            assert!(model.origin.contains("affine.onnx"), "{}", model.origin);
        }
        assert_eq!(plugin.models_loaded(), 1);
        assert_eq!(plugin.models.len(), 1);
        sess.unregister(&res).unwrap();
        assert_eq!(
            plugin.models.len(),
            0,
            "unregistering drops the cached model"
        );
        sess.register(&res).unwrap();
        plugin.models.for_session(&sess).unwrap().unwrap();
        assert_eq!(plugin.models_loaded(), 2);
        drop(sess);
        assert_eq!(
            plugin.models.len(),
            0,
            "releasing the session drops its models"
        );
    }

    #[test]
    fn the_first_onnx_model_wins_and_brings_its_labels() {
        let (dir, plugin, rt) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        let tflite = model_buf(&rt, tflite_bytes(), "m.tflite");
        let path = dir.path().join("affine.onnx");
        std::fs::write(&path, test_models::affine()).unwrap();
        let file = Resource::new(&rt, path.to_str().unwrap(), ResourceType::Model).unwrap();
        let with_labels = Resource::from_blobs(
            &rt,
            vec![
                Blob::from_buf(test_models::affine(), "second.onnx").unwrap(),
                Blob::from_buf(Bytes::from_static(b"cat\ndog\n"), "labels.txt").unwrap(),
            ],
            ResourceType::Model,
        )
        .unwrap();
        for res in [&tflite, &file, &with_labels] {
            sess.register(res).unwrap();
        }
        let model = plugin.models.for_session(&sess).unwrap().unwrap();
        assert!(
            model.origin.contains(&format!("resource {}", file.id())),
            "{}",
            model.origin
        );
        assert!(model.labels.is_none());
        sess.unregister(&file).unwrap();
        let model = plugin.models.for_session(&sess).unwrap().unwrap();
        assert_eq!(
            model.labels.as_deref(),
            Some(&["cat".to_owned(), "dog".to_owned()][..])
        );
    }

    #[test]
    fn sessions_without_an_onnx_model_are_declined() {
        let (_dir, _plugin, rt) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        sess.register(&model_buf(&rt, tflite_bytes(), "m.tflite"))
            .unwrap();
        sess.register(&model_buf(&rt, b"garbage bytes".to_vec(), "junk.onnx"))
            .unwrap();
        let mut name = [0u8; 64];
        let e = sess
            .image_detect(b"not even an image", &mut name)
            .unwrap_err();
        assert!(matches!(e, Error::Declined { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("m.tflite") && text.contains("junk.onnx"),
            "{text}"
        );
        assert_eq!(e.code(), ErrorCode::ENOTSUP);
    }

    #[test]
    fn ops_without_a_bundled_model_are_declined() {
        let (_dir, _plugin, rt) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        let mut name = [0u8; 64];
        for e in [
            sess.image_pose(b"x", &mut name).unwrap_err(),
            sess.image_depth(b"x", &mut name).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Declined { .. }), "{e:?}");
            assert!(
                e.to_string().contains("needs a registered ONNX model"),
                "{e}"
            );
        }
    }

    #[test]
    fn bundled_models_are_parsed_once_per_process() {
        let image = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/images/astronaut.jpg"
        ))
        .unwrap();
        for _ in 0..2 {
            let (_dir, plugin, rt) = runtime();
            let sess = Session::new(&rt, 0).unwrap();
            let mut name = [0u8; 64];
            for _ in 0..2 {
                sess.image_detect(&image, &mut name).unwrap();
                sess.image_segment(&image, &mut name).unwrap();
            }
            assert_eq!(plugin.models_loaded(), 0);
        }
        // Other tests may load them too, but never more than once each.
        assert_eq!(models::bundled_loads(), 2);
    }

    #[test]
    fn registered_classifiers_classify_with_their_labels() {
        let (_dir, _plugin, rt) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        let res = Resource::from_blobs(
            &rt,
            vec![
                Blob::from_buf(test_models::mean_color(), "colors.onnx").unwrap(),
                Blob::from_buf(Bytes::from_static(b"red\ngreen\nblue\n"), "colors.txt").unwrap(),
            ],
            ResourceType::Model,
        )
        .unwrap();
        sess.register(&res).unwrap();
        let mut picture = vaccel_vision::RgbImage::new(40, 30);
        picture.fill_rect(0, 0, 40, 30, [20, 30, 240]);
        let png = vaccel_vision::codec::encode_png(&picture).unwrap();
        let (mut text, mut name) = ([0u8; 64], [0u8; 64]);
        sess.image_classify(&png, &mut text, &mut name).unwrap();
        let text = std::ffi::CStr::from_bytes_until_nul(&text)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(text.ends_with("% blue"), "{text}");
        assert_eq!(name[..text.len()], *text.as_bytes());
        // A classifier cannot segment: declined for the next plugin.
        let e = sess.image_segment(&png, &mut name).unwrap_err();
        assert!(matches!(e, Error::Declined { .. }), "{e:?}");
    }

    #[test]
    fn broken_onnx_models_are_clear_errors() {
        let (_dir, plugin, rt) = runtime();
        let sess = Session::new(&rt, 0).unwrap();
        let res = model_buf(&rt, test_models::unknown_op(), "broken.onnx");
        sess.register(&res).unwrap();
        let mut name = [0u8; 64];
        let e = sess.image_detect(b"x", &mut name).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EINVAL, "{e:?}");
        let again = sess.image_segment(b"x", &mut name).unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
        assert_eq!(
            plugin.models_loaded(),
            1,
            "a broken model is parsed once too"
        );
        let text = e.to_string();
        assert!(
            text.contains("broken.onnx") && text.contains("NoSuchOperator"),
            "{text}"
        );
    }

    #[test]
    fn c_strings_are_truncated_safely() {
        let mut buf = [0xffu8; 8];
        write_c_string(&mut buf, "abc");
        assert_eq!(&buf[..4], b"abc\0");
        write_c_string(&mut buf, "0123456789");
        assert_eq!(&buf, b"0123456\0");
        // "é" is two bytes: never cut in the middle of a character.
        let mut small = [0xffu8; 3];
        write_c_string(&mut small, "aé");
        assert_eq!(&small[..2], b"a\0");
        let mut one = [0xffu8; 1];
        write_c_string(&mut one, "x");
        assert_eq!(one, [0]);
        write_c_string(&mut [], "x");
    }
}
