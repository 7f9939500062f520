//! The plugin behind a real runtime and session: bundled and registered models on the fixture
//! pictures, and the failures callers can cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vaccel_core::{Error, ErrorCode, Plugin, PluginType, Resource, ResourceType, Runtime, Session};
use vaccel_plugin_onnx::{EngineChoice, OnnxPlugin, Settings};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel)
}

fn astronaut() -> Vec<u8> {
    std::fs::read(fixture("images/astronaut.jpg")).unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    plugin: Arc<OnnxPlugin>,
    rt: Runtime,
}

/// tract always; onnxruntime too where it is installed (`./scripts/runtimes.sh`).
fn engines() -> Vec<EngineChoice> {
    let mut engines = vec![EngineChoice::Tract];
    match vaccel_plugin_onnx::onnxruntime::runtime() {
        Ok(_) => engines.push(EngineChoice::OnnxRuntime),
        Err(why) => {
            assert!(
                std::env::var_os("VACCEL_REQUIRE_BACKENDS").is_none(),
                "onnxruntime is required (VACCEL_REQUIRE_BACKENDS) but missing: {why}"
            );
            eprintln!("onnxruntime engine not tested: {why}");
        }
    }
    engines
}

fn setup(engine: EngineChoice) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Arc::new(OnnxPlugin::with_settings(Settings { engine, threads: 1 }));
    let rt = Runtime::builder()
        .skip_logging()
        .rundir_base(dir.path())
        .plugin(Arc::clone(&plugin) as Arc<dyn Plugin>)
        .build()
        .unwrap();
    Setup {
        _dir: dir,
        plugin,
        rt,
    }
}

/// The C string in `buf`.
fn c_str(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).expect("NUL-terminated");
    String::from_utf8(buf[..end].to_vec()).unwrap()
}

/// Detects faces on the astronaut and checks the one face the reference found:
/// (177.3, 80.6)-(271.9, 175.1), score 0.921.
fn detect_the_face(sess: &Session) {
    let mut name = [0u8; 256];
    let faces = sess.image_detect_objects(&astronaut(), &mut name).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let face = &faces[0];
    assert_eq!(face.label, "face");
    assert!((face.score - 0.921).abs() < 0.02, "{face:?}");
    for (got, want) in [
        (face.x0, 177.3),
        (face.y0, 80.6),
        (face.x1, 271.9),
        (face.y1, 175.1),
    ] {
        assert!((got - want).abs() < 5.0, "{face:?}");
    }
    let image = sess.rundir().join(c_str(&name));
    assert!(
        std::fs::metadata(&image).unwrap().len() > 0,
        "{}",
        image.display()
    );
}

#[test]
fn bundled_face_detector_finds_the_astronaut() {
    for engine in engines() {
        let s = setup(engine);
        let sess = Session::new(&s.rt, PluginType::CPU.bits()).unwrap();
        detect_the_face(&sess);
        // The plain op writes the same result image.
        let mut name = [0u8; 256];
        sess.image_detect(&astronaut(), &mut name).unwrap();
        assert!(sess.rundir().join(c_str(&name)).is_file());
        assert_eq!(
            s.plugin.models_loaded(),
            0,
            "bundled models are not registered ones"
        );
    }
}

/// Issue #16: upstream's example picture, a banana, is a banana. The reference (PyTorch on
/// Pillow's decoding, `fixtures/models/efficientnet_lite0/manifest.json`) gives it 98.5%.
#[test]
fn bundled_imagenet_classifier_names_the_banana_of_upstreams_example() {
    let banana = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/example.jpg"),
    )
    .unwrap();
    for engine in engines() {
        let s = setup(engine);
        let sess = Session::new(&s.rt, PluginType::CPU.bits()).unwrap();
        let (mut text, mut name) = ([0u8; 256], [0u8; 256]);
        sess.image_classify(&banana, &mut text, &mut name).unwrap();
        let text = c_str(&text);
        let (prob, label) = text.split_once("% ").unwrap();
        assert_eq!(label, "banana", "{engine:?}: {text}");
        let prob: f32 = prob.parse().unwrap();
        assert!((prob - 98.5).abs() < 1.0, "{engine:?}: {text}");
        assert_eq!(c_str(&name), text);
        assert_eq!(s.plugin.models_loaded(), 0, "the bundled model");
    }
}

#[test]
fn bundled_segmenter_writes_a_mask() {
    for engine in engines() {
        let s = setup(engine);
        let sess = Session::new(&s.rt, 0).unwrap();
        let mut name = [0u8; 256];
        sess.image_segment(&astronaut(), &mut name).unwrap();
        let image = sess.rundir().join(c_str(&name));
        assert!(image.is_file(), "{}", image.display());
        // A name longer than the buffer is cut, still NUL-terminated.
        let mut short = [0xffu8; 4];
        sess.image_segment(&astronaut(), &mut short).unwrap();
        assert_eq!(short[3], 0);
        assert!(c_str(&name).starts_with(&c_str(&short)));
    }
}

#[test]
fn registered_models_are_used_from_files_and_buffers() {
    for engine in engines() {
        let s = setup(engine);
        let path = fixture("models/face_detection_short_range.onnx");
        let file = Resource::new(&s.rt, path.to_str().unwrap(), ResourceType::Model).unwrap();
        let sess = Session::new(&s.rt, 0).unwrap();
        sess.register(&file).unwrap();
        detect_the_face(&sess);
        detect_the_face(&sess);
        assert_eq!(s.plugin.models_loaded(), 1, "parsed once for both calls");

        let buf = Resource::from_buf(
            &s.rt,
            std::fs::read(&path).unwrap(),
            ResourceType::Model,
            Some("face.onnx"),
            true,
        )
        .unwrap();
        let sess2 = Session::new(&s.rt, 0).unwrap();
        sess2.register(&buf).unwrap();
        detect_the_face(&sess2);
        assert_eq!(s.plugin.models_loaded(), 2);

        // A registered segmenter serves segmentation, and cannot detect: declined, not
        // silently replaced by the bundled face detector.
        let selfie = Resource::new(
            &s.rt,
            fixture("models/selfie_segmentation.onnx").to_str().unwrap(),
            ResourceType::Model,
        )
        .unwrap();
        let sess3 = Session::new(&s.rt, 0).unwrap();
        sess3.register(&selfie).unwrap();
        let mut name = [0u8; 256];
        sess3.image_segment(&astronaut(), &mut name).unwrap();
        let e = sess3.image_detect(&astronaut(), &mut name).unwrap_err();
        assert!(matches!(e, Error::Declined { .. }), "{e:?}");
        assert!(e.to_string().contains("selfie_segmentation.onnx"), "{e}");
    }
}

#[test]
fn registered_non_onnx_models_are_declined() {
    for engine in engines() {
        let s = setup(engine);
        let sess = Session::new(&s.rt, 0).unwrap();
        for rel in [
            "models/face_detection_short_range.tflite",
            "torch/tiny_cnn.pt",
            "tf/cnn_frozen.pb",
        ] {
            let res =
                Resource::new(&s.rt, fixture(rel).to_str().unwrap(), ResourceType::Model).unwrap();
            sess.register(&res).unwrap();
        }
        let mut name = [0u8; 256];
        let e = sess.image_detect(&astronaut(), &mut name).unwrap_err();
        assert!(matches!(e, Error::Declined { .. }), "{e:?}");
        assert_eq!(e.code(), ErrorCode::ENOTSUP);
        let text = e.to_string();
        for file in [
            "face_detection_short_range.tflite",
            "tiny_cnn.pt",
            "cnn_frozen.pb",
        ] {
            assert!(text.contains(file), "{text}");
        }
        assert_eq!(s.plugin.models_loaded(), 0);
    }
}

#[test]
fn garbage_models_are_clear_errors() {
    for engine in engines() {
        let s = setup(engine);
        let model = std::fs::read(fixture("models/face_detection_short_range.onnx")).unwrap();
        let mut name = [0u8; 256];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "random.onnx",
                b"\x8a\x13 this is not a model \xff\x00".repeat(50),
            ),
            ("truncated.onnx", model[..model.len() / 3].to_vec()),
        ];
        for (file, bytes) in cases {
            let sess = Session::new(&s.rt, 0).unwrap();
            let res =
                Resource::from_buf(&s.rt, bytes, ResourceType::Model, Some(file), true).unwrap();
            sess.register(&res).unwrap();
            let e = sess.image_detect(&astronaut(), &mut name).unwrap_err();
            assert!(matches!(e, Error::Declined { .. }), "{file}: {e:?}");
            assert!(e.to_string().contains(file), "{e}");
        }
    }
}

/// Corrupted copies of a real model (bytes flipped anywhere: structure or weights) load and
/// run or fail with an error; none panics or takes the process down.
#[test]
fn corrupted_models_never_panic() {
    let model = std::fs::read(fixture("models/face_detection_short_range.onnx")).unwrap();
    let input = vec![0.5f32; 128 * 128 * 3];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..24 {
        let mut bytes = model.clone();
        for _ in 0..1 + next() % 4 {
            // Mostly the first 4 KiB (graph structure), sometimes anywhere.
            let span = if next() % 2 == 0 { 4096 } else { bytes.len() };
            let at = (next() as usize) % span;
            bytes[at] ^= 1 << (next() % 8);
        }
        let mut candidates: Vec<Result<Box<dyn vaccel_vision::Engine>, String>> = vec![
            vaccel_plugin_onnx::TractEngine::from_bytes(&bytes)
                .map(|e| Box::new(e) as Box<dyn vaccel_vision::Engine>)
                .map_err(|e| e.to_string()),
        ];
        // onnxruntime too where it is installed (3000 such models ran clean on 1.31.1).
        if let Ok(rt) = vaccel_plugin_onnx::onnxruntime::runtime() {
            candidates.push(
                vaccel_plugin_onnx::OrtEngine::from_bytes(rt, &bytes, 1)
                    .map(|e| Box::new(e) as Box<dyn vaccel_vision::Engine>)
                    .map_err(|e| e.to_string()),
            );
        }
        for candidate in candidates {
            match candidate {
                Ok(engine) => {
                    loaded += 1;
                    let shapes = engine.input_shapes();
                    if shapes == [vec![1, 128, 128, 3]] {
                        let _ = engine.run(&[vaccel_vision::TensorView {
                            shape: &shapes[0],
                            data: &input,
                        }]);
                    }
                }
                Err(_) => refused += 1,
            }
        }
    }
    eprintln!("corrupted models: {loaded} loaded, {refused} refused");
}

#[test]
fn garbage_images_are_invalid_arguments() {
    for engine in engines() {
        let s = setup(engine);
        let sess = Session::new(&s.rt, 0).unwrap();
        let mut name = [0u8; 256];
        let mut jpeg = astronaut();
        jpeg.truncate(600);
        for image in [b"definitely not an image".to_vec(), jpeg] {
            let e = sess.image_detect(&image, &mut name).unwrap_err();
            assert_eq!(e.code(), ErrorCode::EINVAL, "{e:?}");
            assert!(e.to_string().contains("image"), "{e}");
        }
    }
}

/// The agent's vetting probe: a sound model loads and runs on zeros on every engine, a
/// broken one is an error (an answer, not a crash), other formats are not recognized.
#[test]
fn probe_loads_and_runs_sound_models_and_reports_broken_ones() {
    for engine in engines() {
        let s = setup(engine);
        let sess = Session::new(&s.rt, 0).unwrap();
        let model = std::fs::read(fixture("models/face_detection_short_range.onnx")).unwrap();
        let cases = [
            ("face.onnx", model.clone(), true),
            ("truncated.onnx", model[..model.len() / 3].to_vec(), false),
        ];
        for (file, bytes, sound) in cases {
            let res =
                Resource::from_buf(&s.rt, bytes, ResourceType::Model, Some(file), true).unwrap();
            sess.register(&res).unwrap();
            assert!(s.plugin.recognizes_model(&res), "{engine:?} {file}");
            let probed = s.plugin.probe_model(&sess, &res);
            assert_eq!(probed.is_ok(), sound, "{engine:?} {file}: {probed:?}");
        }
        let tflite = std::fs::read(fixture("models/face_detection_short_range.tflite")).unwrap();
        let res =
            Resource::from_buf(&s.rt, tflite, ResourceType::Model, Some("m.tflite"), true).unwrap();
        assert!(!s.plugin.recognizes_model(&res));
    }
}
