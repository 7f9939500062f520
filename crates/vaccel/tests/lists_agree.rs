//! Lists that must agree across the Rust API and the C layouts (rule F3).
#![allow(clippy::unwrap_used)]

use vaccel::ArgType;
use vaccel_abi as abi;

#[test]
fn c_arg_type_constants_match_the_rust_enum() {
    let c = [
        (abi::VACCEL_ARG_RAW, ArgType::Raw),
        (abi::VACCEL_ARG_INT8, ArgType::Int8),
        (abi::VACCEL_ARG_INT8_ARRAY, ArgType::Int8Array),
        (abi::VACCEL_ARG_INT16, ArgType::Int16),
        (abi::VACCEL_ARG_INT16_ARRAY, ArgType::Int16Array),
        (abi::VACCEL_ARG_INT32, ArgType::Int32),
        (abi::VACCEL_ARG_INT32_ARRAY, ArgType::Int32Array),
        (abi::VACCEL_ARG_INT64, ArgType::Int64),
        (abi::VACCEL_ARG_INT64_ARRAY, ArgType::Int64Array),
        (abi::VACCEL_ARG_UINT8, ArgType::Uint8),
        (abi::VACCEL_ARG_UINT8_ARRAY, ArgType::Uint8Array),
        (abi::VACCEL_ARG_UINT16, ArgType::Uint16),
        (abi::VACCEL_ARG_UINT16_ARRAY, ArgType::Uint16Array),
        (abi::VACCEL_ARG_UINT32, ArgType::Uint32),
        (abi::VACCEL_ARG_UINT32_ARRAY, ArgType::Uint32Array),
        (abi::VACCEL_ARG_UINT64, ArgType::Uint64),
        (abi::VACCEL_ARG_UINT64_ARRAY, ArgType::Uint64Array),
        (abi::VACCEL_ARG_FLOAT32, ArgType::Float32),
        (abi::VACCEL_ARG_FLOAT32_ARRAY, ArgType::Float32Array),
        (abi::VACCEL_ARG_FLOAT64, ArgType::Float64),
        (abi::VACCEL_ARG_FLOAT64_ARRAY, ArgType::Float64Array),
        (abi::VACCEL_ARG_BOOL, ArgType::Bool),
        (abi::VACCEL_ARG_BOOL_ARRAY, ArgType::BoolArray),
        (abi::VACCEL_ARG_CHAR, ArgType::Char),
        (abi::VACCEL_ARG_CHAR_ARRAY, ArgType::CharArray),
        (abi::VACCEL_ARG_UCHAR, ArgType::Uchar),
        (abi::VACCEL_ARG_UCHAR_ARRAY, ArgType::UcharArray),
        (abi::VACCEL_ARG_STRING, ArgType::String),
        (abi::VACCEL_ARG_BUFFER, ArgType::Buffer),
        (abi::VACCEL_ARG_CUSTOM, ArgType::Custom),
    ];
    assert_eq!(c.len(), ArgType::ALL.len());
    for (value, ty) in c {
        assert_eq!(value, ty.value(), "{ty}");
    }
    assert_eq!(abi::VACCEL_ARG_MAX, ArgType::MAX);
}

#[test]
fn cpu_selects_every_cpu_backend() {
    let dir = tempfile::tempdir().unwrap();
    let rt = vaccel::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .config(vaccel::Config::default().with_plugins("cpu"))
        .build()
        .unwrap();
    let names: Vec<String> = rt.plugins().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["blas", "tflite", "onnx", "tf", "torch"]);
    let sess = vaccel::Session::new(&rt, vaccel::PluginType::CPU.bits()).unwrap();
    let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [1.0f32, 0.0, 0.0, 1.0]);
    let mut c = [0f32; 4];
    let args = vaccel::SgemmArgs {
        m: 2,
        n: 2,
        k: 2,
        alpha: 1.0,
        a: &a,
        lda: 2,
        b: &b,
        ldb: 2,
        beta: 0.0,
        ldc: 2,
    };
    sess.sgemm(&args, &mut c).unwrap();
    assert_eq!(c, a, "A x I = A");
    // The same session detects: routed to the first backend that can (tflite, or onnx's
    // bundled detector when LiteRT is not installed).
    let image = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/images/astronaut.jpg"
    ))
    .unwrap();
    let found = sess.image_detect_objects(&image, &mut [0u8; 64]).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].label, "face");
}
