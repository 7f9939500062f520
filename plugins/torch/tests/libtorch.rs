//! The plugin on real TorchScript models (fixtures/torch/, made by
//! scripts/fixtures/torch/make_torch_fixtures.py), through the runtime as applications call
//! it: small purpose-built ones, and a real pretrained model (MediaPipe's short-range face
//! detector, converted from `fixtures/models/face_detection_short_range.onnx`). Compiled only
//! with the `libtorch` feature; see the crate's README.md for how to run.
#![cfg(feature = "libtorch")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;

use vaccel_core::{
    ErrorCode, PluginType, Resource, ResourceType, Runtime, Session, TorchDataType, TorchTensor,
};
use vaccel_plugin_torch::TorchPlugin;

/// Largest difference allowed between our outputs and PyTorch's.
const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/torch")
        .join(name)
}

/// A file of the shared fixtures (`fixtures/`, e.g. `reference/...`).
fn shared_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

fn read_path(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(name: &str) -> Vec<u8> {
    read_path(&fixture(name))
}

/// Little-endian f32 file contents as values.
fn f32s_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Native-endian tensor bytes as f32 values.
fn f32s(t: &TorchTensor<'_>) -> Vec<f32> {
    assert_eq!(t.data_type, TorchDataType::Float);
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn ne<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

struct Env {
    rt: Runtime,
    plugin: Arc<TorchPlugin>,
    sess: Arc<Session>,
}

fn env() -> Env {
    let plugin = Arc::new(TorchPlugin::new());
    let rt = Runtime::builder()
        .skip_logging()
        .plugin(Arc::clone(&plugin) as Arc<dyn vaccel_core::Plugin>)
        .build()
        .unwrap();
    let sess = Session::new(&rt, PluginType::CPU.bits()).unwrap();
    Env { rt, plugin, sess }
}

impl Env {
    fn model(&self, name: &str) -> Arc<Resource> {
        let res = Resource::new(
            &self.rt,
            fixture(name).to_str().unwrap(),
            ResourceType::Model,
        )
        .unwrap();
        self.sess.register(&res).unwrap();
        res
    }
}

/// The reference inputs of the CNN: image [2,3,16,16] f32 and classes [2] i64.
fn cnn_inputs() -> Vec<TorchTensor<'static>> {
    let image = ne(&f32s_le(&read("tiny_cnn_input.bin")), f32::to_ne_bytes);
    let classes: Vec<i64> = read("tiny_cnn_classes.bin")
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    vec![
        TorchTensor::new(vec![2, 3, 16, 16], TorchDataType::Float, image).unwrap(),
        TorchTensor::new(vec![2], TorchDataType::Long, ne(&classes, i64::to_ne_bytes)).unwrap(),
    ]
}

/// The largest difference between two equally long value lists, and where it is.
fn max_diff(got: &[f32], want: &[f32]) -> (f32, usize) {
    assert_eq!(got.len(), want.len(), "element count");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0f32, 0), |(worst, at), (i, d)| {
            // A NaN anywhere counts as the worst difference.
            if d > worst || d.is_nan() {
                (d, i)
            } else {
                (worst, at)
            }
        })
}

fn assert_matches_reference(got: &TorchTensor<'_>, file: &str, dims: &[i64]) {
    assert_eq!(got.dims, dims, "{file}: dims");
    let (got, want) = (f32s(got), f32s_le(&read(file)));
    assert_eq!(got.len(), want.len(), "{file}: element count");
    let (worst, at) = max_diff(&got, &want);
    let values = if got.len() <= 64 {
        format!("\n got {got:?}\nwant {want:?}")
    } else {
        format!(" at element {at}: got {}, want {}", got[at], want[at])
    };
    assert!(
        worst <= TOLERANCE,
        "{file}: max difference {worst} > {TOLERANCE}{values}"
    );
}

fn assert_cnn_outputs(outputs: &[TorchTensor<'_>]) {
    assert_eq!(outputs.len(), 3);
    assert_matches_reference(&outputs[0], "tiny_cnn_logits.bin", &[2, 10]);
    assert_matches_reference(&outputs[1], "tiny_cnn_features.bin", &[2, 16]);
    assert_matches_reference(&outputs[2], "tiny_cnn_picked.bin", &[2]);
}

#[test]
fn outputs_match_the_pytorch_reference() {
    let env = env();
    let model = env.model("tiny_cnn.pt");
    env.sess.torch_model_load(&model).unwrap();
    let outputs = env
        .sess
        .torch_model_run(&model, None, &cnn_inputs(), 3)
        .unwrap();
    assert_cnn_outputs(&outputs);
    // picked[i] = logits[i, classes[i]] with classes [3, 7]: the int64 input arrived intact.
    let (logits, picked) = (f32s(&outputs[0]), f32s(&outputs[2]));
    assert_eq!(picked, [logits[3], logits[10 + 7]]);
}

#[test]
fn fewer_outputs_than_the_model_returns() {
    let env = env();
    let model = env.model("tiny_cnn.pt");
    let outputs = env
        .sess
        .torch_model_run(&model, Some(b"ignored"), &cnn_inputs(), 1)
        .unwrap();
    assert_eq!(outputs.len(), 1);
    assert_matches_reference(&outputs[0], "tiny_cnn_logits.bin", &[2, 10]);
    let none = env
        .sess
        .torch_model_run(&model, None, &cnn_inputs(), 0)
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn repeated_runs_do_not_reload() {
    let env = env();
    let model = env.model("tiny_cnn.pt");
    env.sess.torch_model_load(&model).unwrap();
    env.sess.torch_model_load(&model).unwrap();
    for _ in 0..3 {
        let outputs = env
            .sess
            .torch_model_run(&model, None, &cnn_inputs(), 3)
            .unwrap();
        assert_cnn_outputs(&outputs);
    }
    assert_eq!(env.plugin.models_loaded(), 1);
    assert_eq!(env.plugin.models_cached(), 1);

    // Another session loads its own copy.
    let other = Session::new(&env.rt, PluginType::CPU.bits()).unwrap();
    other.register(&model).unwrap();
    other
        .torch_model_run(&model, None, &cnn_inputs(), 1)
        .unwrap();
    assert_eq!(env.plugin.models_loaded(), 2);
    assert_eq!(env.plugin.models_cached(), 2);

    // Unregistering drops the session's copy; registering again loads it again.
    env.sess.unregister(&model).unwrap();
    assert_eq!(env.plugin.models_cached(), 1);
    env.sess.register(&model).unwrap();
    env.sess.torch_model_load(&model).unwrap();
    assert_eq!(env.plugin.models_loaded(), 3);

    // Releasing a session drops everything it loaded.
    drop(other);
    assert_eq!(env.plugin.models_cached(), 1);
    let Env { plugin, sess, .. } = env;
    drop(sess);
    assert_eq!(plugin.models_cached(), 0);
}

#[test]
fn run_loads_the_model_on_first_use() {
    let env = env();
    let model = env.model("tiny_cnn.pt");
    assert_eq!(env.plugin.models_loaded(), 0);
    let outputs = env
        .sess
        .torch_model_run(&model, None, &cnn_inputs(), 3)
        .unwrap();
    assert_cnn_outputs(&outputs);
    assert_eq!(env.plugin.models_loaded(), 1);
}

#[test]
fn model_from_an_in_memory_buffer() {
    let env = env();
    for mem_only in [true, false] {
        let model = Resource::from_buf(
            &env.rt,
            read("tiny_cnn.pt"),
            ResourceType::Model,
            Some("tiny_cnn.pt"),
            mem_only,
        )
        .unwrap();
        env.sess.register(&model).unwrap();
        env.sess.torch_model_load(&model).unwrap();
        let outputs = env
            .sess
            .torch_model_run(&model, None, &cnn_inputs(), 3)
            .unwrap();
        assert_cnn_outputs(&outputs);
    }
}

#[test]
fn every_element_type_crosses_intact() {
    let env = env();
    let model = env.model("dtypes.pt");
    let t = |ty, data: Vec<u8>| TorchTensor::new(vec![3], ty, data).unwrap();
    // f16 bit patterns of 0.5, -1.0, 2.0 and of their doubles 1.0, -2.0, 4.0.
    let f16 = |bits: [u16; 3]| ne(&bits, u16::to_ne_bytes);
    let inputs = [
        t(TorchDataType::Byte, vec![0, 1, 254]),
        t(TorchDataType::Char, ne(&[-5i8, 0, 5], i8::to_ne_bytes)),
        t(TorchDataType::Short, ne(&[-3i16, 0, 300], i16::to_ne_bytes)),
        t(TorchDataType::Int, ne(&[-2i32, 0, 7], i32::to_ne_bytes)),
        t(
            TorchDataType::Long,
            ne(&[-1i64, 0, 1 << 40], i64::to_ne_bytes),
        ),
        t(TorchDataType::Half, f16([0x3800, 0xbc00, 0x4000])),
    ];
    let out = env.sess.torch_model_run(&model, None, &inputs, 8).unwrap();
    let want = [
        t(TorchDataType::Byte, vec![1, 2, 255]),
        t(TorchDataType::Char, ne(&[-6i8, -1, 4], i8::to_ne_bytes)),
        t(TorchDataType::Short, ne(&[-6i16, 0, 600], i16::to_ne_bytes)),
        t(TorchDataType::Int, ne(&[-6i32, 0, 21], i32::to_ne_bytes)),
        t(
            TorchDataType::Long,
            ne(&[4i64, 5, (1 << 40) + 5], i64::to_ne_bytes),
        ),
        t(TorchDataType::Half, f16([0x3c00, 0xc000, 0x4400])),
        // bool comes back as BYTE, float64 as FLOAT.
        t(TorchDataType::Byte, vec![0, 0, 1]),
        t(
            TorchDataType::Float,
            ne(&[-1f32, 0.0, 3.5], f32::to_ne_bytes),
        ),
    ];
    assert_eq!(out.len(), want.len());
    for (i, (got, want)) in out.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "output {i}");
    }
    // The ninth element of the result is the int 42, not a tensor.
    let e = env
        .sess
        .torch_model_run(&model, None, &inputs, 9)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ENOTSUP, "{e}");
    assert!(e.to_string().contains("output 8: a scalar"), "{e}");
}

#[test]
fn bad_inputs_are_refused_and_the_model_keeps_working() {
    let env = env();
    let model = env.model("tiny_cnn.pt");
    let good = cnn_inputs();
    let run = |inputs: &[TorchTensor<'_>], n| env.sess.torch_model_run(&model, None, inputs, n);

    // Fewer bytes than dims x element size: refused before libtorch reads them.
    let mut short = good.clone();
    short[0].data.to_mut().truncate(6144 - 4);
    let e = run(&short, 3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    assert!(e.to_string().contains("need 6144 bytes"), "{e}");

    // More bytes than that, too.
    let mut long = good.clone();
    long[1].data.to_mut().extend_from_slice(&[0; 8]);
    assert_eq!(run(&long, 3).unwrap_err().code(), ErrorCode::EINVAL);

    // A type whose size does not fit the bytes.
    let mut retyped = good.clone();
    retyped[0].data_type = TorchDataType::Long;
    assert_eq!(run(&retyped, 3).unwrap_err().code(), ErrorCode::EINVAL);

    // Consistent tensors the model cannot take: the model's error, with libtorch's reason.
    let mut as_int = good.clone();
    as_int[0].data_type = TorchDataType::Int;
    let e = run(&as_int, 3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EBACKEND, "{e}");
    assert!(!e.to_string().contains("frame #"), "backtrace leaked: {e}");
    let mut one_channel = good.clone();
    one_channel[0].dims = vec![2, 1, 48, 16];
    let e = run(&one_channel, 3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EBACKEND, "{e}");
    assert!(e.to_string().contains("channels"), "{e}");
    let e = run(&good[..1], 3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EBACKEND, "{e}");

    // More outputs than the model returns.
    let e = run(&good, 4).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    assert!(e.to_string().contains("returned 3 output tensors"), "{e}");

    assert_cnn_outputs(&run(&good, 3).unwrap());
    assert_eq!(env.plugin.models_loaded(), 1);
}

#[test]
fn broken_models_are_refused() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 3] = [
        ("text.pt", b"definitely not a model"),
        ("zip.pt", b"PK\x03\x04 a zip header and nothing else"),
        ("onnx.pt", b"\x08\x07\x12\x07pytorch"),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let model = Resource::new(&env.rt, path.to_str().unwrap(), ResourceType::Model).unwrap();
        env.sess.register(&model).unwrap();
        let e = env.sess.torch_model_load(&model).unwrap_err();
        assert_eq!(e.code(), ErrorCode::EINVAL, "{name}: {e}");
        assert!(!e.to_string().contains("frame #"), "backtrace leaked: {e}");
        let e = env
            .sess
            .torch_model_run(&model, None, &cnn_inputs(), 1)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::EINVAL, "{name}: {e}");
    }
    // A truncated real model.
    let model = Resource::from_buf(
        &env.rt,
        read("tiny_cnn.pt")[..4000].to_vec(),
        ResourceType::Model,
        None,
        true,
    )
    .unwrap();
    env.sess.register(&model).unwrap();
    assert_eq!(
        env.sess.torch_model_load(&model).unwrap_err().code(),
        ErrorCode::EINVAL
    );
    assert_eq!(env.plugin.models_loaded(), 0);
    assert_eq!(env.plugin.models_cached(), 0);
}

#[test]
fn sgemm_adds_the_product_to_c() {
    let env = env();
    let f = |dims: Vec<i64>, v: &[f32]| {
        TorchTensor::new(dims, TorchDataType::Float, ne(v, f32::to_ne_bytes)).unwrap()
    };
    // [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] + [1 1; 1 1]
    let a = f(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = f(vec![3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let c = f(vec![2, 2], &[1.0; 4]);
    let out = env.sess.torch_sgemm(&a, &b, &c, 2, 2, 3).unwrap().unwrap();
    assert_eq!(out.dims, [2, 2]);
    assert_eq!(f32s(&out), [59.0, 65.0, 140.0, 155.0]);

    let e = env.sess.torch_sgemm(&a, &b, &c, 2, 2, 2).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
    let ints = TorchTensor::new(vec![2, 3], TorchDataType::Int, vec![0; 24]).unwrap();
    let e = env.sess.torch_sgemm(&ints, &b, &c, 2, 2, 3).unwrap_err();
    assert_eq!(e.code(), ErrorCode::EINVAL, "{e}");
}

#[test]
fn concurrent_runs_share_one_model() {
    let env = env();
    let model = env.model("tiny_cnn.pt");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let outputs = env
                    .sess
                    .torch_model_run(&model, None, &cnn_inputs(), 3)
                    .unwrap();
                assert_cnn_outputs(&outputs);
            });
        }
    });
    assert_eq!(env.plugin.models_loaded(), 1);
}

/// The real pretrained model: MediaPipe 0.10.9's short-range face detector (Apache-2.0).
const FACE_DETECTOR: &str = "face_detection_short_range.pt";

/// Its outputs: regressors [1,896,16] and classificators [1,896,1].
const FACE_OUTPUTS: [(&str, &[i64]); 2] = [
    ("face_detection_short_range.out0.bin", &[1, 896, 16]),
    ("face_detection_short_range.out1.bin", &[1, 896, 1]),
];

/// The shared reference input of the face detector: the astronaut picture, letterboxed to
/// 128x128, in [-1, 1], NHWC [1,128,128,3] f32.
fn face_input() -> TorchTensor<'static> {
    let values = f32s_le(&read_path(&shared_fixture(
        "reference/face_detection_short_range.input.bin",
    )));
    TorchTensor::new(
        vec![1, 128, 128, 3],
        TorchDataType::Float,
        ne(&values, f32::to_ne_bytes),
    )
    .unwrap()
}

#[test]
fn a_real_pretrained_model_matches_pytorch_and_onnxruntime() {
    let env = env();
    let model = env.model(FACE_DETECTOR);
    env.sess.torch_model_load(&model).unwrap();
    let outputs = env
        .sess
        .torch_model_run(&model, None, &[face_input()], 2)
        .unwrap();
    assert_eq!(outputs.len(), 2);
    for (i, (got, (file, dims))) in outputs.iter().zip(FACE_OUTPUTS).enumerate() {
        assert_matches_reference(got, file, dims);
        let (worst, at) = max_diff(&f32s(got), &f32s_le(&read(file)));
        eprintln!("output {i}: max difference from PyTorch {worst:e} (element {at})");
    }

    // The same model as onnxruntime ran it (fixtures/reference/): the conversion to
    // TorchScript is faithful. PyTorch itself is 6.9e-5 from it (fixtures/torch/manifest.json).
    for (i, got) in outputs.iter().enumerate() {
        let file = format!("reference/face_detection_short_range.onnx.out{i}.bin");
        let (worst, at) = max_diff(&f32s(got), &f32s_le(&read_path(&shared_fixture(&file))));
        eprintln!("output {i}: max difference from onnxruntime {worst:e} (element {at})");
        assert!(
            worst <= 1e-3,
            "{file}: max difference {worst} at element {at}"
        );
    }

    // And it finds the face: as in fixtures/reference/manifest.json, 8 of the 896 anchors
    // score above MediaPipe's threshold 0.5, the best one (141) with 0.9211377.
    let scores: Vec<f32> = f32s(&outputs[1])
        .iter()
        .map(|&s| 1.0 / (1.0 + (-s.clamp(-100.0, 100.0)).exp()))
        .collect();
    let (best, &score) = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    assert_eq!(best, 141);
    assert!((score - 0.921_137_7).abs() <= TOLERANCE, "score {score}");
    assert_eq!(scores.iter().filter(|&&s| s > 0.5).count(), 8);

    // Again from memory, and repeated runs do not reload it.
    let in_memory = Resource::from_buf(
        &env.rt,
        read(FACE_DETECTOR),
        ResourceType::Model,
        Some(FACE_DETECTOR),
        true,
    )
    .unwrap();
    env.sess.register(&in_memory).unwrap();
    for res in [&model, &in_memory] {
        let outputs = env
            .sess
            .torch_model_run(res, None, &[face_input()], 2)
            .unwrap();
        for (got, (file, dims)) in outputs.iter().zip(FACE_OUTPUTS) {
            assert_matches_reference(got, file, dims);
        }
    }
    assert_eq!(env.plugin.models_loaded(), 2);
}

/// The agent's vetting probe: TorchScript archives are recognized and loaded (nothing kept),
/// other files are not recognized, a broken archive is an error.
#[test]
fn probe_loads_torchscript_and_keeps_nothing() {
    use vaccel_core::plugin::Plugin;
    let env = env();
    let model = env.model("tiny_cnn.pt");
    assert!(env.plugin.recognizes_model(&model));
    env.plugin.probe_model(&env.sess, &model).unwrap();
    assert_eq!(env.plugin.models_cached(), 0);
    let onnx = Resource::from_buf(
        &env.rt,
        b"\x08\x07\x12\x07pytorch".to_vec(),
        ResourceType::Model,
        Some("m.onnx"),
        true,
    )
    .unwrap();
    assert!(!env.plugin.recognizes_model(&onnx));
    let truncated = Resource::from_buf(
        &env.rt,
        read("tiny_cnn.pt")[..4000].to_vec(),
        ResourceType::Model,
        Some("t.pt"),
        true,
    )
    .unwrap();
    assert!(env.plugin.recognizes_model(&truncated));
    assert!(env.plugin.probe_model(&env.sess, &truncated).is_err());
}
