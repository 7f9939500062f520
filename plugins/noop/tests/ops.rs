//! Every operation of the noop plugin through a real runtime: the typed `Session` API and
//! `Session::genop` with every layout of `vaccel_core::genop`, outputs checked byte for byte,
//! the plugin's debug lines checked against upstream's wording, and the error paths.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;
use vaccel_core::arg::read_c_string;
use vaccel_core::tensor::{TfLiteDataType, TfLiteTensor, TfTensor, TorchDataType, TorchTensor};
use vaccel_core::{
    Arg, ArgError, ArgType, BlobType, Config, Error, ErrorCode, OpSet, OpType, PluginType,
    Resource, ResourceType, Runtime, Session, SgemmArgs, TfDataType, TfNode, TfStatus,
    VACCEL_VERSION,
};
use vaccel_plugin_noop::NoopPlugin;

// ---------------------------------------------------------------------------------------------
// Log capture: a process-wide logger that records messages only for threads inside `logs`, so
// tests running in parallel see only their own lines.

mod capture {
    use std::cell::RefCell;
    use std::sync::Once;

    thread_local! {
        static LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LINES.with(|l| {
                if let Some(lines) = l.borrow_mut().as_mut() {
                    lines.push(record.args().to_string());
                }
            });
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;
    static INIT: Once = Once::new();

    /// Runs `f` and returns what it logged on this thread.
    pub fn logs<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
        INIT.call_once(|| {
            log::set_logger(&CAPTURE).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Trace);
        });
        LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
        let r = f();
        let lines = LINES.with(|l| l.borrow_mut().take()).unwrap_or_default();
        (r, lines)
    }
}

use capture::logs;

#[track_caller]
fn assert_logged(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "missing log line {expected:?}; logged:\n{}",
        lines.join("\n")
    );
}

#[track_caller]
fn assert_not_logged(lines: &[String], unexpected: &str) {
    assert!(
        !lines.iter().any(|l| l == unexpected),
        "unexpected log line {unexpected:?}; logged:\n{}",
        lines.join("\n")
    );
}

/// The `[noop] ` lines of `lines`, in order.
fn noop_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.starts_with("[noop] "))
        .map(String::as_str)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fixture and helpers.

/// A runtime with only the noop plugin, its run directory in a temp dir.
struct Fx {
    rt: Runtime,
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::builder()
            .rundir_base(dir.path().join("run"))
            .skip_logging()
            .plugin(Arc::new(NoopPlugin::new()))
            .build()
            .unwrap();
        Fx { rt, dir }
    }

    fn session(&self) -> Arc<Session> {
        Session::new(&self.rt, 0).unwrap()
    }

    /// A file under the fixture's temp dir (outside the rundir).
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn resource(&self, name: &str, kind: ResourceType) -> Arc<Resource> {
        let p = self.file(name, b"\x7fELF not really a library or model");
        Resource::new(&self.rt, p.to_str().unwrap(), kind).unwrap()
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[track_caller]
fn code<T: std::fmt::Debug>(r: vaccel_core::Result<T>) -> ErrorCode {
    r.unwrap_err().code()
}

fn op(op: OpType) -> Arg<'static> {
    Arg::scalar(op.value())
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn i32s(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// `text` plus NUL, then the rest of a `len`-byte buffer still holding `fill`.
fn c_string_in(text: &str, len: usize, fill: u8) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.push(0);
    v.resize(len, fill);
    v
}

const CLASS_TAG: &str = "This is a dummy classification tag!";
const IMGNAME: &str = "This is a dummy imgname!";
const TF_MESSAGE: &str = "Operation handled by noop plugin";

// ---------------------------------------------------------------------------------------------
// Descriptor, registration, noop.

#[test]
fn plugin_descriptor_and_bundled_entry() {
    let fx = Fx::new();
    let plugins = fx.rt.plugins();
    assert_eq!(plugins.len(), 1);
    let info = &plugins[0];
    assert_eq!(info.name, "noop");
    assert_eq!(info.version, VACCEL_VERSION);
    assert_eq!(info.vaccel_version, VACCEL_VERSION);
    assert_eq!(info.plugin_type, PluginType::DEBUG);
    assert!(!info.remote);
    let sess = fx.session();
    assert_eq!(sess.plugin().ops(), OpSet::ALL);

    // Selected by name through the bundled descriptor, as `VACCEL_PLUGINS=noop` does.
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .bundled([vaccel_plugin_noop::bundled()])
        .config(Config::default().with_plugins("libvaccel-noop.so"))
        .build()
        .unwrap();
    assert_eq!(rt.plugins()[0].name, "noop");
    let sess = Session::new(&rt, PluginType::DEBUG.bits()).unwrap();
    sess.noop().unwrap();
}

#[test]
fn noop_logs_its_session() {
    let fx = Fx::new();
    let sess = fx.session();
    let (r, lines) = logs(|| sess.noop());
    r.unwrap();
    assert_eq!(
        noop_lines(&lines),
        [format!("[noop] Calling no-op for session {}", sess.id())]
    );
}

#[test]
fn genop_noop_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let (r, lines) = logs(|| sess.genop(&[op(OpType::Noop)], &mut []));
    r.unwrap();
    assert_logged(
        &lines,
        &format!("[noop] Calling no-op for session {}", sess.id()),
    );
    // NOOP takes nothing more.
    assert_eq!(
        code(sess.genop(&[op(OpType::Noop), Arg::scalar(1i32)], &mut [])),
        ErrorCode::EINVAL
    );
    let mut out = 0i32;
    assert_eq!(
        code(sess.genop(&[op(OpType::Noop)], &mut [Arg::out_scalar(&mut out)])),
        ErrorCode::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// Generic negative cases.

#[test]
fn genop_rejects_missing_or_invalid_op_type() {
    let fx = Fx::new();
    let sess = fx.session();
    assert_eq!(code(sess.genop(&[], &mut [])), ErrorCode::EINVAL);
    for bad in [24u8, 99, 255] {
        assert_eq!(
            code(sess.genop(&[Arg::scalar(bad)], &mut [])),
            ErrorCode::EINVAL,
            "op {bad}"
        );
    }
    // The op type must be a UINT8 scalar.
    let err = sess.genop(&[Arg::scalar(1i32)], &mut []).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Arg {
                index: 0,
                source: ArgError::WrongType { .. }
            }
        ),
        "{err:?}"
    );
    let arr = [1u8];
    assert_eq!(
        code(sess.genop(&[Arg::array(&arr).unwrap()], &mut [])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(&[Arg::raw(&[1u8])], &mut [])),
        ErrorCode::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// exec.

#[test]
fn exec_copies_input_to_output_and_logs_upstream_lines() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut out = 0i32;
    let (r, lines) = logs(|| {
        sess.exec(
            "libmytestlib.so",
            "mytestfunc",
            &[Arg::scalar(10i32)],
            &mut [Arg::out_scalar(&mut out)],
        )
    });
    r.unwrap();
    assert_eq!(out, 10);
    assert_eq!(
        noop_lines(&lines),
        [
            format!("[noop] Calling exec for session {}", sess.id()),
            "[noop] Dumping arguments for exec:".to_owned(),
            "[noop] library: libmytestlib.so symbol: mytestfunc".to_owned(),
            "[noop] nr_read: 1 nr_write: 1".to_owned(),
            "[noop] will return dummy output = input".to_owned(),
        ]
    );

    // Arrays are copied whole, whatever their types, as long as sizes match.
    let input = [1i32, -2, 3, i32::MAX];
    let mut output = [0u32; 4];
    {
        let mut write = [Arg::out_array(&mut output).unwrap()];
        sess.exec(
            "lib",
            "f",
            &[Arg::array(&input).unwrap(), Arg::scalar(5u8)],
            &mut write,
        )
        .unwrap();
    }
    assert_eq!(
        i32s(&input),
        output
            .iter()
            .flat_map(|x| x.to_ne_bytes())
            .collect::<Vec<_>>()
    );
}

#[test]
fn exec_leaves_outputs_alone_unless_the_dummy_rule_applies() {
    let fx = Fx::new();
    let sess = fx.session();

    // Output larger than input.
    let mut out = [0x5au8; 8];
    let (r, lines) = logs(|| {
        sess.exec(
            "l",
            "s",
            &[Arg::scalar(10i32)],
            &mut [Arg::raw_mut(&mut out)],
        )
    });
    r.unwrap();
    assert_eq!(out, [0x5a; 8]);
    assert_not_logged(&lines, "[noop] will return dummy output = input");

    // Two outputs.
    let (mut a, mut b) = (0i32, 0i32);
    sess.exec(
        "l",
        "s",
        &[Arg::scalar(10i32)],
        &mut [Arg::out_scalar(&mut a), Arg::out_scalar(&mut b)],
    )
    .unwrap();
    assert_eq!((a, b), (0, 0));

    // Same size but not a whole number of ints.
    let input = [1u8, 2, 3];
    let mut out = [0u8; 3];
    sess.exec("l", "s", &[Arg::raw(&input)], &mut [Arg::raw_mut(&mut out)])
        .unwrap();
    assert_eq!(out, [0; 3]);

    // No input at all (upstream would read past the array).
    let mut out = 7i32;
    let (r, lines) = logs(|| sess.exec("l", "s", &[], &mut [Arg::out_scalar(&mut out)]));
    r.unwrap();
    assert_eq!(out, 7);
    assert_logged(&lines, "[noop] nr_read: 0 nr_write: 1");

    // No output.
    sess.exec("l", "s", &[Arg::scalar(1i32)], &mut []).unwrap();
}

#[test]
fn exec_errors() {
    let fx = Fx::new();
    let sess = fx.session();
    assert_eq!(
        code(sess.exec("", "s", &[], &mut [])),
        ErrorCode::EINVAL,
        "empty library"
    );
    assert_eq!(
        code(sess.exec("l", "", &[], &mut [])),
        ErrorCode::EINVAL,
        "empty symbol"
    );
    // A read-only output that the dummy rule would write into.
    let ro = 0i32.to_ne_bytes();
    let err = sess
        .exec(
            "l",
            "s",
            &[Arg::scalar(3i32)],
            &mut [Arg::new(ArgType::Int32, &ro).unwrap()],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Arg {
                index: 0,
                source: ArgError::ReadOnly
            }
        ),
        "{err:?}"
    );
    assert_eq!(ro, [0; 4]);
}

#[test]
fn genop_exec_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut out = 0i32;
    let read = [
        op(OpType::Exec),
        Arg::string("libmytestlib.so").unwrap(),
        Arg::string("mytestfunc").unwrap(),
        Arg::scalar(10i32),
    ];
    let (r, lines) = logs(|| sess.genop(&read, &mut [Arg::out_scalar(&mut out)]));
    r.unwrap();
    assert_eq!(out, 10);
    assert_logged(&lines, "[noop] library: libmytestlib.so symbol: mytestfunc");
    // Only the arguments after library and symbol reach the plugin.
    assert_logged(&lines, "[noop] nr_read: 1 nr_write: 1");

    // Library and symbol only: valid, nothing to copy.
    sess.genop(
        &[
            op(OpType::Exec),
            Arg::string("l").unwrap(),
            Arg::string("s").unwrap(),
        ],
        &mut [],
    )
    .unwrap();

    // Missing symbol; library not a STRING; symbol not a STRING.
    assert_eq!(
        code(sess.genop(&[op(OpType::Exec), Arg::string("l").unwrap()], &mut [])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[
                op(OpType::Exec),
                Arg::buffer(b"l").unwrap(),
                Arg::string("s").unwrap()
            ],
            &mut []
        )),
        ErrorCode::EINVAL
    );
    let err = sess
        .genop(
            &[
                op(OpType::Exec),
                Arg::string("l").unwrap(),
                Arg::scalar(1i32),
            ],
            &mut [],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Arg { index: 2, .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// exec_with_resource.

#[test]
fn exec_with_resource_typed() {
    let fx = Fx::new();
    let sess = fx.session();
    let lib = fx.resource("libmytestlib.so", ResourceType::Lib);
    sess.register(&lib).unwrap();
    let lib_path = path_str(lib.blobs()[0].path().unwrap());

    let mut out = 0i32;
    let (r, lines) = logs(|| {
        sess.exec_with_resource(
            &lib,
            "mytestfunc",
            &[Arg::scalar(10i32)],
            &mut [Arg::out_scalar(&mut out)],
        )
    });
    r.unwrap();
    assert_eq!(out, 10);
    assert_eq!(
        noop_lines(&lines),
        [
            format!(
                "[noop] Calling exec_with_resource for session {}",
                sess.id()
            ),
            "[noop] Dumping arguments for exec_with_resource:".to_owned(),
            format!("[noop] library: {lib_path} symbol: mytestfunc"),
            "[noop] nr_read: 1 nr_write: 1".to_owned(),
            "[noop] will return dummy output = input".to_owned(),
        ]
    );
}

#[test]
fn exec_with_resource_logs_dependencies_then_the_library() {
    let fx = Fx::new();
    let sess = fx.session();
    let dep1 = fx.file("libdep1.so", b"dep1");
    let dep2 = fx.file("libdep2.so", b"dep2");
    let main = fx.file("libmain.so", b"main");
    let paths = [
        dep1.to_str().unwrap(),
        dep2.to_str().unwrap(),
        main.to_str().unwrap(),
    ];
    let lib = Resource::from_paths(&fx.rt, &paths, ResourceType::Lib).unwrap();
    sess.register(&lib).unwrap();
    let (r, lines) = logs(|| sess.exec_with_resource(&lib, "entry", &[], &mut []));
    r.unwrap();
    let noop = noop_lines(&lines);
    assert_eq!(
        noop[2..],
        [
            format!("[noop] dep library: {}", dep1.display()),
            format!("[noop] dep library: {}", dep2.display()),
            format!("[noop] library: {} symbol: entry", main.display()),
            "[noop] nr_read: 0 nr_write: 0".to_owned(),
        ]
    );

    // A library held only in memory has no path to show.
    let mem = Resource::from_buf(
        &fx.rt,
        b"in-memory library".to_vec(),
        ResourceType::Lib,
        Some("libmem.so"),
        true,
    )
    .unwrap();
    sess.register(&mem).unwrap();
    let (r, lines) = logs(|| sess.exec_with_resource(&mem, "f", &[], &mut []));
    r.unwrap();
    assert_logged(&lines, "[noop] library: (null) symbol: f");
}

#[test]
fn exec_with_resource_requires_a_registered_lib() {
    let fx = Fx::new();
    let sess = fx.session();
    let lib = fx.resource("libx.so", ResourceType::Lib);
    // Not registered with this session.
    assert_eq!(
        code(sess.exec_with_resource(&lib, "f", &[], &mut [])),
        ErrorCode::EPERM
    );
    // Registered with another session only.
    let other = fx.session();
    other.register(&lib).unwrap();
    assert_eq!(
        code(sess.exec_with_resource(&lib, "f", &[], &mut [])),
        ErrorCode::EPERM
    );
    // Not a library: the type is checked before registration.
    let data = fx.resource("data.bin", ResourceType::Data);
    assert_eq!(
        code(sess.exec_with_resource(&data, "f", &[], &mut [])),
        ErrorCode::EINVAL
    );
    sess.register(&data).unwrap();
    assert_eq!(
        code(sess.exec_with_resource(&data, "f", &[], &mut [])),
        ErrorCode::EINVAL
    );
    // Empty symbol.
    sess.register(&lib).unwrap();
    assert_eq!(
        code(sess.exec_with_resource(&lib, "", &[], &mut [])),
        ErrorCode::EINVAL
    );
}

#[test]
fn genop_exec_with_resource_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let lib = fx.resource("libmytestlib.so", ResourceType::Lib);
    sess.register(&lib).unwrap();
    let read = |id: i64| {
        [
            op(OpType::ExecWithResource),
            Arg::scalar(id),
            Arg::string("mytestfunc").unwrap(),
            Arg::scalar(10i32),
        ]
    };
    let mut out = 0i32;
    sess.genop(&read(lib.id()), &mut [Arg::out_scalar(&mut out)])
        .unwrap();
    assert_eq!(out, 10);

    // Unknown ids, invalid ids, ids of the wrong type.
    assert_eq!(code(sess.genop(&read(999), &mut [])), ErrorCode::ENOENT);
    assert_eq!(code(sess.genop(&read(0), &mut [])), ErrorCode::EINVAL);
    let err = sess
        .genop(
            &[
                op(OpType::ExecWithResource),
                Arg::scalar(lib.id() as i32),
                Arg::string("f").unwrap(),
            ],
            &mut [],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Arg { index: 1, .. }), "{err:?}");
    assert_eq!(
        code(sess.genop(
            &[op(OpType::ExecWithResource), Arg::scalar(lib.id())],
            &mut []
        )),
        ErrorCode::EINVAL,
        "missing symbol"
    );

    // A library that exists but is not registered with this session: EPERM.
    let unregistered = fx.resource("libother.so", ResourceType::Lib);
    assert_eq!(
        code(sess.genop(&read(unregistered.id()), &mut [])),
        ErrorCode::EPERM
    );
    // A registered resource that is not a library: EINVAL.
    let model = fx.resource("model.bin", ResourceType::Model);
    sess.register(&model).unwrap();
    assert_eq!(
        code(sess.genop(&read(model.id()), &mut [])),
        ErrorCode::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// Image operations.

#[test]
fn image_classify_typed_writes_c_strings() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut text = [0xffu8; 64];
    let mut imgname = [0xffu8; 40];
    let (r, lines) = logs(|| sess.image_classify(b"jpeg bytes", &mut text, &mut imgname));
    r.unwrap();
    assert_eq!(text.to_vec(), c_string_in(CLASS_TAG, 64, 0xff));
    assert_eq!(imgname.to_vec(), c_string_in(IMGNAME, 40, 0xff));
    assert_eq!(
        noop_lines(&lines),
        [
            format!(
                "[noop] Calling Image classification for session {}",
                sess.id()
            ),
            "[noop] Dumping arguments for Image classification:".to_owned(),
            "[noop] model: (null)".to_owned(),
            "[noop] len_img: 10".to_owned(),
            "[noop] len_out_text: 64".to_owned(),
            "[noop] len_out_imgname: 40".to_owned(),
            "[noop] will return a dummy result".to_owned(),
            "[noop] will return a dummy result".to_owned(),
        ]
    );

    // Truncated like snprintf: always NUL-terminated.
    let mut text = [0xffu8; 8];
    let mut imgname = [0xffu8; 1];
    sess.image_classify(b"x", &mut text, &mut imgname).unwrap();
    assert_eq!(&text, b"This is\0");
    assert_eq!(imgname, [0]);
    // Empty outputs are left empty (and the imgname length is not logged, as upstream).
    let (r, lines) = logs(|| sess.image_classify(b"x", &mut [], &mut []));
    r.unwrap();
    assert_logged(&lines, "[noop] len_out_text: 0");
    assert!(!lines.iter().any(|l| l.contains("len_out_imgname")));

    // An empty image is refused by the runtime.
    assert_eq!(
        code(sess.image_classify(b"", &mut [0; 4], &mut [0; 4])),
        ErrorCode::EINVAL
    );
}

#[test]
fn image_ops_log_the_sessions_model() {
    let fx = Fx::new();
    let sess = fx.session();
    // A LIB resource is not a model.
    let lib = fx.resource("libx.so", ResourceType::Lib);
    sess.register(&lib).unwrap();
    let (_, lines) = logs(|| sess.image_detect(b"img", &mut [0; 32]));
    assert_logged(&lines, "[noop] model: (null)");

    let model = fx.resource("resnet.onnx", ResourceType::Model);
    sess.register(&model).unwrap();
    let model_path = path_str(model.blobs()[0].path().unwrap());
    let (r, lines) = logs(|| sess.image_classify(b"img", &mut [0; 64], &mut [0; 64]));
    r.unwrap();
    assert_logged(&lines, &format!("[noop] model: {model_path}"));
    let (r, lines) = logs(|| sess.image_depth(b"img", &mut [0; 64]));
    r.unwrap();
    assert_logged(&lines, &format!("[noop] model: {model_path}"));
}

type ImageFn = fn(&Session, &[u8], &mut [u8]) -> vaccel_core::Result<()>;

const IMAGE_OPS: [(OpType, &str, ImageFn); 4] = [
    (
        OpType::ImageDetect,
        "Image detection",
        Session::image_detect,
    ),
    (
        OpType::ImageSegment,
        "Image segmentation",
        Session::image_segment,
    ),
    (OpType::ImagePose, "Image pose", Session::image_pose),
    (OpType::ImageDepth, "Image depth", Session::image_depth),
];

#[test]
fn image_detect_segment_pose_depth_typed() {
    let fx = Fx::new();
    let sess = fx.session();
    for (op_type, title, f) in IMAGE_OPS {
        let mut imgname = [0xeeu8; 30];
        let (r, lines) = logs(|| f(&sess, b"image", &mut imgname));
        r.unwrap();
        assert_eq!(
            imgname.to_vec(),
            c_string_in(IMGNAME, 30, 0xee),
            "{op_type}"
        );
        assert_eq!(
            noop_lines(&lines),
            [
                format!("[noop] Calling {title} for session {}", sess.id()),
                format!("[noop] Dumping arguments for {title}:"),
                "[noop] model: (null)".to_owned(),
                "[noop] len_img: 5".to_owned(),
                "[noop] len_out_imgname: 30".to_owned(),
                "[noop] will return a dummy result".to_owned(),
            ]
        );
        let mut short = [0xeeu8; 5];
        f(&sess, b"image", &mut short).unwrap();
        assert_eq!(&short, b"This\0");
        assert_eq!(code(f(&sess, b"", &mut imgname)), ErrorCode::EINVAL);
    }
}

#[test]
fn genop_image_classify_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let image = b"fake image".to_vec();
    let mut imgname = [0u8; 512];
    let mut text = [0u8; 512];
    {
        let read = [op(OpType::ImageClassify), Arg::buffer(&image).unwrap()];
        let mut write = [
            Arg::new_mut(ArgType::UcharArray, &mut imgname).unwrap(),
            Arg::new_mut(ArgType::UcharArray, &mut text).unwrap(),
        ];
        sess.genop(&read, &mut write).unwrap();
    }
    // Write order is imgname, then text.
    assert_eq!(imgname.to_vec(), c_string_in(IMGNAME, 512, 0));
    assert_eq!(text.to_vec(), c_string_in(CLASS_TAG, 512, 0));
    assert_eq!(read_c_string(&text), CLASS_TAG);
}

#[test]
fn genop_image_ops_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    for (op_type, _, _) in IMAGE_OPS {
        let mut imgname = [0x11u8; 100];
        {
            let read = [op(op_type), Arg::buffer(b"img").unwrap()];
            let mut write = [Arg::new_mut(ArgType::UcharArray, &mut imgname).unwrap()];
            sess.genop(&read, &mut write).unwrap();
        }
        assert_eq!(
            imgname.to_vec(),
            c_string_in(IMGNAME, 100, 0x11),
            "{op_type}"
        );
    }
}

#[test]
fn genop_image_argument_errors() {
    let fx = Fx::new();
    let sess = fx.session();
    let uchar = |n| Arg::zeroed(ArgType::UcharArray, n).unwrap();
    let img = || Arg::buffer(b"img").unwrap();
    let all_ops = [
        OpType::ImageClassify,
        OpType::ImageDetect,
        OpType::ImageSegment,
        OpType::ImagePose,
        OpType::ImageDepth,
    ];
    for op_type in all_ops {
        let writes = if op_type == OpType::ImageClassify {
            2
        } else {
            1
        };
        let good_write = || (0..writes).map(|_| uchar(64)).collect::<Vec<_>>();
        // Wrong number of read arguments: none, two.
        assert_eq!(
            code(sess.genop(&[op(op_type)], &mut good_write())),
            ErrorCode::EINVAL,
            "{op_type} no image"
        );
        assert_eq!(
            code(sess.genop(&[op(op_type), img(), img()], &mut good_write())),
            ErrorCode::EINVAL,
            "{op_type} two images"
        );
        // Wrong number of write arguments: one fewer, one more.
        let mut fewer: Vec<_> = (1..writes).map(|_| uchar(64)).collect();
        assert_eq!(
            code(sess.genop(&[op(op_type), img()], &mut fewer)),
            ErrorCode::EINVAL,
            "{op_type} fewer writes"
        );
        // Detection takes an optional second output for its objects (our extension).
        let most = if op_type == OpType::ImageDetect {
            let mut two: Vec<_> = (0..2).map(|_| uchar(64)).collect();
            sess.genop(&[op(op_type), img()], &mut two).unwrap();
            assert_eq!(two[1].bytes()[0], 0, "no objects: an empty text");
            2
        } else {
            writes
        };
        let mut more: Vec<_> = (0..=most).map(|_| uchar(64)).collect();
        assert_eq!(
            code(sess.genop(&[op(op_type), img()], &mut more)),
            ErrorCode::EINVAL,
            "{op_type} more writes"
        );
        // The image must be a BUFFER.
        assert_eq!(
            code(sess.genop(&[op(op_type), Arg::raw(b"img")], &mut good_write())),
            ErrorCode::EINVAL,
            "{op_type} raw image"
        );
        // Outputs must be writable UCHAR_ARRAYs.
        let ro = [0u8; 64];
        let mut write: Vec<_> = (0..writes)
            .map(|_| Arg::new(ArgType::UcharArray, &ro).unwrap())
            .collect();
        let err = sess.genop(&[op(op_type), img()], &mut write).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Arg {
                    index: 0,
                    source: ArgError::ReadOnly
                }
            ),
            "{op_type}: {err:?}"
        );
        let mut write: Vec<_> = (0..writes)
            .map(|_| Arg::zeroed(ArgType::CharArray, 64).unwrap())
            .collect();
        assert_eq!(
            code(sess.genop(&[op(op_type), img()], &mut write)),
            ErrorCode::EINVAL,
            "{op_type} char array"
        );
    }
    // Classification's second output (text) read-only: reported at write index 1.
    let ro = [0u8; 64];
    let mut write = [uchar(64), Arg::new(ArgType::UcharArray, &ro).unwrap()];
    let err = sess
        .genop(&[op(OpType::ImageClassify), img()], &mut write)
        .unwrap_err();
    assert!(matches!(err, Error::Arg { index: 1, .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// BLAS sgemm.

const SG_A: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
const SG_B: [f32; 6] = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];

fn sgemm_args() -> SgemmArgs<'static> {
    SgemmArgs {
        m: 2,
        n: 2,
        k: 3,
        alpha: 1.5,
        a: &SG_A,
        lda: 3,
        b: &SG_B,
        ldb: 2,
        beta: 0.25,
        ldc: 2,
    }
}

#[test]
fn sgemm_typed_logs_and_leaves_c_untouched() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut c = [-1.0f32; 4];
    let (r, lines) = logs(|| sess.sgemm(&sgemm_args(), &mut c));
    r.unwrap();
    assert_eq!(c, [-1.0; 4]);
    let noop = noop_lines(&lines);
    assert_eq!(
        noop[..4],
        [
            format!("[noop] Calling sgemm for session {}", sess.id()),
            "[noop] Dumping arguments for sgemm:".to_owned(),
            "[noop] m: 2 n: 2 k: 3".to_owned(),
            "[noop] alpha: 1.500000".to_owned(),
        ]
    );
    assert!(noop[4].starts_with("[noop] A: 0x") && noop[4].ends_with(" lda: 3"));
    assert!(noop[5].starts_with("[noop] B: 0x") && noop[5].ends_with(" ldb: 2"));
    assert_eq!(noop[6], "[noop] beta: 0.250000");
    assert!(noop[7].starts_with("[noop] C: 0x") && noop[7].ends_with(" ldc: 2"));

    // Dimension checks happen before the plugin.
    assert_eq!(
        code(sess.sgemm(&sgemm_args(), &mut c[..3])),
        ErrorCode::EINVAL
    );
    let neg = SgemmArgs {
        m: -1,
        ..sgemm_args()
    };
    assert_eq!(code(sess.sgemm(&neg, &mut c)), ErrorCode::EINVAL);
}

/// The ten read arguments of the sgemm layout (after the op type).
fn sgemm_read() -> Vec<Arg<'static>> {
    vec![
        Arg::scalar(2i64),
        Arg::scalar(2i64),
        Arg::scalar(3i64),
        Arg::scalar(1.5f32),
        Arg::owned(ArgType::Float32Array, f32s(&SG_A)).unwrap(),
        Arg::scalar(3i64),
        Arg::owned(ArgType::Float32Array, f32s(&SG_B)).unwrap(),
        Arg::scalar(2i64),
        Arg::scalar(0.25f32),
        Arg::scalar(2i64),
    ]
}

fn with_op(op_type: OpType, rest: Vec<Arg<'static>>) -> Vec<Arg<'static>> {
    let mut v = vec![op(op_type)];
    v.extend(rest);
    v
}

#[test]
fn genop_sgemm_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut c = [3.0f32; 4];
    let (r, lines) = logs(|| {
        sess.genop(
            &with_op(OpType::BlasSgemm, sgemm_read()),
            &mut [Arg::out_array(&mut c).unwrap()],
        )
    });
    r.unwrap();
    assert_eq!(c, [3.0; 4]);
    assert_logged(&lines, "[noop] m: 2 n: 2 k: 3");
    assert_logged(&lines, "[noop] alpha: 1.500000");
    assert_logged(&lines, "[noop] beta: 0.250000");
}

#[test]
fn genop_sgemm_rejects_a_wrong_type_at_every_position() {
    let fx = Fx::new();
    let sess = fx.session();
    for pos in 0..10 {
        let mut read = sgemm_read();
        // UINT8 is wrong everywhere in this layout.
        read[pos] = Arg::scalar(1u8);
        let mut c = [0f32; 4];
        let err = sess
            .genop(
                &with_op(OpType::BlasSgemm, read),
                &mut [Arg::out_array(&mut c).unwrap()],
            )
            .unwrap_err();
        // Indices count the op type, so they match the caller's array.
        assert!(
            matches!(
                err,
                Error::Arg {
                    index,
                    source: ArgError::WrongType { .. }
                } if index == pos + 1
            ),
            "position {pos}: {err:?}"
        );
        assert_eq!(err.code(), ErrorCode::EINVAL);
    }
    // A scalar of the right family but wrong width is still the wrong type.
    let mut read = sgemm_read();
    read[3] = Arg::scalar(1.5f64);
    assert_eq!(
        code(sess.genop(
            &with_op(OpType::BlasSgemm, read),
            &mut [Arg::zeroed(ArgType::Float32Array, 16).unwrap()]
        )),
        ErrorCode::EINVAL
    );
}

#[test]
fn genop_sgemm_count_and_output_errors() {
    let fx = Fx::new();
    let sess = fx.session();
    let c = || Arg::zeroed(ArgType::Float32Array, 16).unwrap();
    // Nine or eleven read arguments.
    let mut nine = sgemm_read();
    nine.pop();
    assert_eq!(
        code(sess.genop(&with_op(OpType::BlasSgemm, nine), &mut [c()])),
        ErrorCode::EINVAL
    );
    let mut eleven = sgemm_read();
    eleven.push(Arg::scalar(0i64));
    assert_eq!(
        code(sess.genop(&with_op(OpType::BlasSgemm, eleven), &mut [c()])),
        ErrorCode::EINVAL
    );
    // Zero or two write arguments.
    assert_eq!(
        code(sess.genop(&with_op(OpType::BlasSgemm, sgemm_read()), &mut [])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(&with_op(OpType::BlasSgemm, sgemm_read()), &mut [c(), c()])),
        ErrorCode::EINVAL
    );
    // C of the wrong type, read-only, or too small.
    let err = sess
        .genop(
            &with_op(OpType::BlasSgemm, sgemm_read()),
            &mut [Arg::zeroed(ArgType::Int32Array, 16).unwrap()],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Arg { index: 0, .. }), "{err:?}");
    let ro = [0u8; 16];
    let err = sess
        .genop(
            &with_op(OpType::BlasSgemm, sgemm_read()),
            &mut [Arg::new(ArgType::Float32Array, &ro).unwrap()],
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Arg {
                index: 0,
                source: ArgError::ReadOnly
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        code(sess.genop(
            &with_op(OpType::BlasSgemm, sgemm_read()),
            &mut [Arg::zeroed(ArgType::Float32Array, 12).unwrap()]
        )),
        ErrorCode::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// FPGA operations.

#[test]
fn fpga_ops_typed() {
    let fx = Fx::new();
    let sess = fx.session();

    let a = [1i32, -2, 3];
    let mut out = [0i32; 4];
    let (r, lines) = logs(|| sess.fpga_arraycopy(&a, &mut out));
    r.unwrap();
    assert_eq!(out, [1, -2, 3, 0]);
    assert_eq!(
        noop_lines(&lines),
        [
            format!("[noop] Calling fpga_arraycopy for session {}", sess.id()),
            "[noop] Dumping arguments for fpga_arraycopy:".to_owned(),
            "[noop] len_a: 3 ".to_owned(),
        ]
    );

    let fa = [1.0f32, 2.0, 3.0];
    let fb = [0.5f32, 0.25, 0.125];
    let mut c = [0f32; 4];
    let (r, lines) = logs(|| sess.fpga_mmult(&fa, &fb, &mut c));
    r.unwrap();
    assert_eq!(c, [9.1, 9.1, 9.1, 0.0]);
    assert_logged(&lines, "[noop] len_a: 3");

    let mut add = [0f32; 3];
    let mut mult = [0f32; 3];
    sess.fpga_parallel(&fa, &fb, &mut add, &mut mult).unwrap();
    assert_eq!(add, [1.5, 2.25, 3.125]);
    assert_eq!(mult, [1.0; 3]);

    let mut c = [7f32; 3];
    let (r, lines) = logs(|| sess.fpga_vadd(&fa[..2], &fb, &mut c));
    r.unwrap();
    assert_eq!(c, [1.5, 2.25, 7.0]);
    assert_logged(&lines, "[noop] len_a: 2 len_b: 3 ");

    // Outputs shorter than the input are refused before the plugin.
    assert_eq!(
        code(sess.fpga_arraycopy(&a, &mut [0; 2])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.fpga_mmult(&fa, &fb[..2], &mut [0.0; 3])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.fpga_parallel(&fa, &fb, &mut [0.0; 3], &mut [0.0; 2])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.fpga_vadd(&fa, &fb, &mut [0.0; 2])),
        ErrorCode::EINVAL
    );
}

#[test]
fn genop_fpga_layouts_with_untyped_args() {
    let fx = Fx::new();
    let sess = fx.session();

    // ARRAYCOPY: one int array in, one out; any arg type.
    let a = i32s(&[5, 6, -7]);
    let mut out = [0u8; 12];
    sess.genop(
        &[op(OpType::FpgaArraycopy), Arg::raw(&a)],
        &mut [Arg::raw_mut(&mut out)],
    )
    .unwrap();
    assert_eq!(out.to_vec(), a);
    let mut out = [0i32; 3];
    {
        let mut write = [Arg::out_array(&mut out).unwrap()];
        sess.genop(
            &[op(OpType::FpgaArraycopy), Arg::buffer(&a).unwrap()],
            &mut write,
        )
        .unwrap();
    }
    assert_eq!(out, [5, 6, -7]);

    let fa = f32s(&[1.0, 2.0]);
    let fb = f32s(&[10.0, 20.0]);

    // MMULT.
    let mut c = [0u8; 12];
    sess.genop(
        &[op(OpType::FpgaMmult), Arg::raw(&fa), Arg::raw(&fb)],
        &mut [Arg::raw_mut(&mut c)],
    )
    .unwrap();
    assert_eq!(c.to_vec(), [f32s(&[9.1, 9.1]), vec![0; 4]].concat());

    // PARALLEL.
    let mut add = [0u8; 8];
    let mut mult = [0u8; 8];
    sess.genop(
        &[op(OpType::FpgaParallel), Arg::raw(&fa), Arg::raw(&fb)],
        &mut [Arg::raw_mut(&mut add), Arg::raw_mut(&mut mult)],
    )
    .unwrap();
    assert_eq!(add.to_vec(), f32s(&[11.0, 22.0]));
    assert_eq!(mult.to_vec(), f32s(&[1.0, 1.0]));

    // VECTORADD.
    let mut c = [0u8; 8];
    sess.genop(
        &[op(OpType::FpgaVectoradd), Arg::raw(&fa), Arg::raw(&fb)],
        &mut [Arg::raw_mut(&mut c)],
    )
    .unwrap();
    assert_eq!(c.to_vec(), f32s(&[11.0, 22.0]));

    // Unaligned outputs are handled (copied through a temporary).
    let mut storage = [0u8; 9];
    sess.genop(
        &[op(OpType::FpgaVectoradd), Arg::raw(&fa), Arg::raw(&fb)],
        &mut [Arg::raw_mut(&mut storage[1..])],
    )
    .unwrap();
    assert_eq!(storage[1..].to_vec(), f32s(&[11.0, 22.0]));
}

#[test]
fn genop_fpga_argument_errors() {
    let fx = Fx::new();
    let sess = fx.session();
    let fa = f32s(&[1.0, 2.0]);
    let out = || Arg::zeroed(ArgType::Raw, 8).unwrap();
    // Wrong read counts.
    assert_eq!(
        code(sess.genop(&[op(OpType::FpgaArraycopy)], &mut [out()])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[op(OpType::FpgaArraycopy), Arg::raw(&fa), Arg::raw(&fa)],
            &mut [out()]
        )),
        ErrorCode::EINVAL
    );
    for op_type in [
        OpType::FpgaMmult,
        OpType::FpgaVectoradd,
        OpType::FpgaParallel,
    ] {
        assert_eq!(
            code(sess.genop(&[op(op_type), Arg::raw(&fa)], &mut [out(), out()])),
            ErrorCode::EINVAL,
            "{op_type}"
        );
    }
    // Wrong write counts.
    assert_eq!(
        code(sess.genop(
            &[op(OpType::FpgaMmult), Arg::raw(&fa), Arg::raw(&fa)],
            &mut [out(), out()]
        )),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[op(OpType::FpgaParallel), Arg::raw(&fa), Arg::raw(&fa)],
            &mut [out()]
        )),
        ErrorCode::EINVAL
    );
    // Empty input, too-small output, read-only output.
    assert_eq!(
        code(sess.genop(&[op(OpType::FpgaArraycopy), Arg::raw(&[])], &mut [out()])),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[op(OpType::FpgaVectoradd), Arg::raw(&fa), Arg::raw(&fa)],
            &mut [Arg::zeroed(ArgType::Raw, 4).unwrap()]
        )),
        ErrorCode::EINVAL
    );
    let ro = [0u8; 8];
    assert_eq!(
        code(sess.genop(
            &[op(OpType::FpgaVectoradd), Arg::raw(&fa), Arg::raw(&fa)],
            &mut [Arg::raw(&ro)]
        )),
        ErrorCode::EINVAL
    );
    assert_eq!(ro, [0; 8]);
}

// ---------------------------------------------------------------------------------------------
// minmax.

#[test]
fn minmax_typed() {
    let fx = Fx::new();
    let sess = fx.session();
    let input = [3.5f64, -1.25, 8.0];
    let mut out = [0f64; 4];
    let (r, lines) = logs(|| sess.minmax(&input, 2, 9, &mut out));
    assert_eq!(r.unwrap(), (-1.0, 10000.0));
    assert_eq!(out, [3.5, -1.25, 8.0, 0.0]);
    assert_eq!(
        noop_lines(&lines),
        [
            format!("[noop] Calling minmax for session {}", sess.id()),
            "[noop] Dumping arguments for minmax: ndata:3".to_owned(),
            "[noop] low: 2 high: 9 ".to_owned(),
            "[noop] will return dummy min and max values".to_owned(),
        ]
    );
    assert_eq!(code(sess.minmax(&[], 0, 1, &mut out)), ErrorCode::EINVAL);
    assert_eq!(
        code(sess.minmax(&input, 0, 1, &mut out[..2])),
        ErrorCode::EINVAL
    );
}

#[test]
fn genop_minmax_layout_with_raw_args() {
    let fx = Fx::new();
    let sess = fx.session();
    let input = f64s(&[1.0, 2.0, 3.0]);
    let run = |ndata: i32, out: &mut [u8], min: &mut [u8], max: &mut [u8]| {
        let ndata = ndata.to_ne_bytes();
        let low = 1i32.to_ne_bytes();
        let high = 100i32.to_ne_bytes();
        sess.genop(
            &[
                op(OpType::Minmax),
                Arg::raw(&input),
                Arg::raw(&ndata),
                Arg::raw(&low),
                Arg::raw(&high),
            ],
            &mut [Arg::raw_mut(out), Arg::raw_mut(min), Arg::raw_mut(max)],
        )
    };

    let (mut out, mut min, mut max) = ([0xffu8; 24], [0u8; 8], [0u8; 8]);
    let (r, lines) = logs(|| run(3, &mut out, &mut min, &mut max));
    r.unwrap();
    assert_eq!(out.to_vec(), input);
    assert_eq!(min, (-1.0f64).to_ne_bytes());
    assert_eq!(max, 10000.0f64.to_ne_bytes());
    assert_logged(&lines, "[noop] low: 1 high: 100 ");

    // ndata selects a prefix.
    let (mut out, mut min, mut max) = ([0xffu8; 24], [0u8; 8], [0u8; 8]);
    run(2, &mut out, &mut min, &mut max).unwrap();
    assert_eq!(out[..16].to_vec(), input[..16].to_vec());
    assert_eq!(out[16..], [0xff; 8]);

    // ndata beyond the data, negative, or zero; min too small to hold a double.
    for bad in [4, -1, 0] {
        let (mut out, mut min, mut max) = ([0u8; 24], [0u8; 8], [0u8; 8]);
        assert_eq!(
            code(run(bad, &mut out, &mut min, &mut max)),
            ErrorCode::EINVAL,
            "ndata {bad}"
        );
    }
    let (mut out, mut min, mut max) = ([0u8; 24], [0u8; 4], [0u8; 8]);
    assert_eq!(
        code(run(3, &mut out, &mut min, &mut max)),
        ErrorCode::EINVAL
    );

    // Wrong counts, and an ndata that is not four bytes.
    let four = 3i32.to_ne_bytes();
    assert_eq!(
        code(sess.genop(
            &[
                op(OpType::Minmax),
                Arg::raw(&input),
                Arg::raw(&four),
                Arg::raw(&four)
            ],
            &mut [
                Arg::zeroed(ArgType::Raw, 24).unwrap(),
                Arg::zeroed(ArgType::Raw, 8).unwrap(),
                Arg::zeroed(ArgType::Raw, 8).unwrap()
            ]
        )),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[
                op(OpType::Minmax),
                Arg::raw(&input),
                Arg::raw(&four),
                Arg::raw(&four),
                Arg::raw(&four)
            ],
            &mut [Arg::zeroed(ArgType::Raw, 24).unwrap()]
        )),
        ErrorCode::EINVAL
    );
    assert_eq!(
        code(sess.genop(
            &[
                op(OpType::Minmax),
                Arg::raw(&input),
                Arg::scalar(3i64),
                Arg::raw(&four),
                Arg::raw(&four)
            ],
            &mut [
                Arg::zeroed(ArgType::Raw, 24).unwrap(),
                Arg::zeroed(ArgType::Raw, 8).unwrap(),
                Arg::zeroed(ArgType::Raw, 8).unwrap()
            ]
        )),
        ErrorCode::EINVAL
    );
}

// ---------------------------------------------------------------------------------------------
// OpenCV.

#[test]
fn opencv_writes_size_headers() {
    let fx = Fx::new();
    let sess = fx.session();
    let func = [7u8];
    let payload = [0u8; 10];
    let mut w0 = [0xaau8; 16];
    let mut w1 = [0xaau8; 4];
    let ro = [0xaau8; 16];
    let mut w3 = [0xaau8; 8];
    let (r, lines) = logs(|| {
        sess.opencv(
            &[Arg::raw(&func), Arg::raw(&payload)],
            &mut [
                Arg::raw_mut(&mut w0),
                Arg::raw_mut(&mut w1),
                Arg::raw(&ro),
                Arg::new_mut(ArgType::UcharArray, &mut w3).unwrap(),
            ],
        )
    });
    r.unwrap();
    assert_eq!(w0[..8], 4u64.to_ne_bytes());
    assert_eq!(w0[8..], [0xaa; 8]);
    assert_eq!(w1, [0xaa; 4], "too small for a header");
    assert_eq!(ro, [0xaa; 16], "read-only");
    assert_eq!(w3, 2u64.to_ne_bytes());
    assert_eq!(
        noop_lines(&lines)[..6],
        [
            format!("[noop] Calling opencv for session {}", sess.id()),
            "[noop] Dumping arguments for opencv:".to_owned(),
            "[noop] nr_read: 2 nr_write: 4".to_owned(),
            "[noop] [OpenCV] function: 7".to_owned(),
            "[noop] opencv read[1] size: 10".to_owned(),
            "[noop] opencv write[0] size: 16".to_owned(),
        ]
    );

    // Nothing to read.
    let (r, lines) = logs(|| sess.opencv(&[], &mut []));
    r.unwrap();
    assert_logged(&lines, "[noop] [OpenCV] function: none");
}

#[test]
fn genop_opencv_passes_everything_through() {
    let fx = Fx::new();
    let sess = fx.session();
    let mut w = [0u8; 40];
    let (r, lines) = logs(|| {
        sess.genop(
            &[
                op(OpType::Opencv),
                Arg::scalar(3u8),
                Arg::buffer(b"mat").unwrap(),
            ],
            &mut [Arg::raw_mut(&mut w)],
        )
    });
    r.unwrap();
    assert_eq!(w[..8], 10u64.to_ne_bytes());
    assert_eq!(w[8..], [0; 32]);
    // The op type is not forwarded: the function is the first argument after it.
    assert_logged(&lines, "[noop] nr_read: 2 nr_write: 1");
    assert_logged(&lines, "[noop] [OpenCV] function: 3");
    assert_logged(&lines, "[noop] opencv read[1] size: 3");
    // No arguments beyond the op type is fine too.
    sess.genop(&[op(OpType::Opencv)], &mut []).unwrap();
}

// ---------------------------------------------------------------------------------------------
// TensorFlow.

fn tf_input_data() -> Vec<u8> {
    f32s(&[0.5, 1.5, 2.5, 3.5])
}

#[test]
fn tf_load_unload_typed() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("saved_model.pb", ResourceType::Model);
    sess.register(&model).unwrap();
    let expected = TfStatus::new(0, TF_MESSAGE);
    let (r, lines) = logs(|| sess.tf_model_load(&model));
    assert_eq!(r.unwrap(), expected);
    assert_eq!(
        noop_lines(&lines),
        [format!(
            "[noop] Calling tf_model_load for session {}",
            sess.id()
        )]
    );
    let (r, lines) = logs(|| sess.tf_model_unload(&model));
    assert_eq!(r.unwrap(), expected);
    assert_logged(
        &lines,
        &format!("[noop] Calling tf_model_unload for session {}", sess.id()),
    );
}

#[test]
fn model_ops_check_type_then_registration() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("m.bin", ResourceType::Model);
    let lib = fx.resource("libm.so", ResourceType::Lib);
    let data = tf_input_data();
    let t = TfTensor::new(vec![4], TfDataType::Float, &data[..]).unwrap();
    let lt = TfLiteTensor::new(vec![4], TfLiteDataType::Float32, &data[..]).unwrap();
    let tt = TorchTensor::new(vec![4], TorchDataType::Float, &data[..]).unwrap();
    let n = [TfNode::new("x", 0)];
    let check = |res: &Resource, expected: ErrorCode| {
        assert_eq!(code(sess.tf_model_load(res)), expected);
        assert_eq!(code(sess.tf_model_unload(res)), expected);
        assert_eq!(
            code(sess.tf_model_run(res, None, &n, std::slice::from_ref(&t), &n)),
            expected
        );
        assert_eq!(code(sess.tflite_model_load(res)), expected);
        assert_eq!(code(sess.tflite_model_unload(res)), expected);
        assert_eq!(
            code(sess.tflite_model_run(res, std::slice::from_ref(&lt), 1)),
            expected
        );
        assert_eq!(code(sess.torch_model_load(res)), expected);
        assert_eq!(
            code(sess.torch_model_run(res, None, std::slice::from_ref(&tt), 1)),
            expected
        );
    };
    check(&model, ErrorCode::EPERM);
    check(&lib, ErrorCode::EINVAL);
    sess.register(&lib).unwrap();
    check(&lib, ErrorCode::EINVAL);
    // A released model is no longer usable.
    sess.register(&model).unwrap();
    sess.tf_model_load(&model).unwrap();
    model.release().unwrap();
    assert_eq!(code(sess.tf_model_load(&model)), ErrorCode::EINVAL);
}

#[test]
fn tf_run_typed_mirrors_inputs() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("saved_model.pb", ResourceType::Model);
    sess.register(&model).unwrap();
    let d0 = tf_input_data();
    let d1 = [1u8, 2, 3];
    let inputs = [
        TfTensor::new(vec![1, 2, 2], TfDataType::Float, &d0[..]).unwrap(),
        TfTensor::new(vec![3], TfDataType::Uint8, &d1[..]).unwrap(),
    ];
    let in_nodes = [
        TfNode::new("serving_default_data", 0),
        TfNode::new("aux", 1),
    ];
    let out_nodes = [TfNode::new("PartitionedCall", 0)];
    let (r, lines) =
        logs(|| sess.tf_model_run(&model, Some(b"opts"), &in_nodes, &inputs, &out_nodes));
    let out = r.unwrap();
    assert_eq!(out.status, TfStatus::new(0, TF_MESSAGE));
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.outputs[0].dims, vec![1, 2, 2]);
    assert_eq!(out.outputs[0].data_type, TfDataType::Float);
    assert_eq!(&*out.outputs[0].data, &d0[..]);
    assert!(matches!(out.outputs[0].data, std::borrow::Cow::Owned(_)));

    let noop = noop_lines(&lines);
    assert_eq!(
        noop[0],
        format!("[noop] Calling tf_model_run for session {}", sess.id())
    );
    assert!(noop[1].starts_with("[noop] Run options -> 0x") && noop[1].ends_with(", 4"));
    assert_eq!(
        noop[2..9],
        [
            "[noop] Number of inputs: 2",
            "[noop] \tNode 0: serving_default_data:0",
            "[noop] \t#dims: 3 -> {",
            "[noop] \t\t1",
            "[noop] \t\t2",
            "[noop] \t\t2",
            "[noop] \t}",
        ]
    );
    assert_eq!(noop[9], "[noop] \tData type: 1");
    assert!(noop[10].starts_with("[noop] \tData -> 0x") && noop[10].ends_with(", 16"));
    assert_logged(&lines, "[noop] \tNode 1: aux:1");
    assert_logged(&lines, "[noop] \tData type: 4");
    assert_logged(&lines, "[noop] Number of outputs: 1");
    assert_logged(&lines, "[noop] \tNode 0: PartitionedCall:0");

    // Both outputs, in order; no run options is not logged.
    let out_nodes2 = [TfNode::new("a", 0), TfNode::new("b", 0)];
    let (r, lines) = logs(|| sess.tf_model_run(&model, None, &in_nodes, &inputs, &out_nodes2));
    let out = r.unwrap();
    assert_eq!(out.outputs.len(), 2);
    assert_eq!(out.outputs[1].dims, vec![3]);
    assert_eq!(out.outputs[1].data_type, TfDataType::Uint8);
    assert_eq!(&*out.outputs[1].data, &d1[..]);
    assert!(!lines.iter().any(|l| l.contains("Run options")));

    // No outputs asked.
    let out = sess
        .tf_model_run(&model, None, &in_nodes, &inputs, &[])
        .unwrap();
    assert!(out.outputs.is_empty());

    // More outputs than inputs to mirror.
    let three = [
        TfNode::new("a", 0),
        TfNode::new("b", 0),
        TfNode::new("c", 0),
    ];
    assert_eq!(
        code(sess.tf_model_run(&model, None, &in_nodes, &inputs, &three)),
        ErrorCode::EINVAL
    );
    // Node and tensor counts must agree.
    assert_eq!(
        code(sess.tf_model_run(&model, None, &in_nodes[..1], &inputs, &out_nodes)),
        ErrorCode::EINVAL
    );
}

/// The read arguments of a TF run with one input and `outs` output nodes.
fn tf_run_read(model_id: i64, data: &[u8], outs: usize) -> Vec<Arg<'_>> {
    let mut read = vec![
        op(OpType::TfModelRun),
        Arg::scalar(model_id),
        Arg::raw(&[]),
        Arg::scalar(1u32),
        Arg::string("serving_default_data").unwrap(),
        Arg::scalar(0i32),
        Arg::owned(
            ArgType::Int64Array,
            [1i64, 2, 2].iter().flat_map(|d| d.to_ne_bytes()).collect(),
        )
        .unwrap(),
        Arg::scalar(TfDataType::Float.value()),
        Arg::buffer(data).unwrap(),
    ];
    for i in 0..outs {
        read.push(Arg::string(&format!("out{i}")).unwrap());
        read.push(Arg::scalar(i as i32));
    }
    read
}

#[test]
fn genop_tf_load_unload_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("saved_model.pb", ResourceType::Model);
    sess.register(&model).unwrap();
    for op_type in [OpType::TfModelLoad, OpType::TfModelUnload] {
        // Without a status.
        sess.genop(&[op(op_type), Arg::scalar(model.id())], &mut [])
            .unwrap();
        // With a status: UINT8 code and a text buffer.
        let mut status_code = 0xffu8;
        let mut msg = [0xffu8; 64];
        {
            let mut write = [
                Arg::out_scalar(&mut status_code),
                Arg::new_mut(ArgType::UcharArray, &mut msg).unwrap(),
            ];
            sess.genop(&[op(op_type), Arg::scalar(model.id())], &mut write)
                .unwrap();
        }
        assert_eq!(status_code, 0);
        assert_eq!(msg.to_vec(), c_string_in(TF_MESSAGE, 64, 0xff));
        // A message buffer that is too small gets a truncated message.
        let mut status_code = 0xffu8;
        let mut msg = [0xffu8; 8];
        {
            let mut write = [
                Arg::out_scalar(&mut status_code),
                Arg::new_mut(ArgType::CharArray, &mut msg).unwrap(),
            ];
            sess.genop(&[op(op_type), Arg::scalar(model.id())], &mut write)
                .unwrap();
        }
        assert_eq!(&msg, b"Operati\0");
        // One write argument is not a status.
        let mut c = 0u8;
        assert_eq!(
            code(sess.genop(
                &[op(op_type), Arg::scalar(model.id())],
                &mut [Arg::out_scalar(&mut c)]
            )),
            ErrorCode::EINVAL
        );
        // Model id missing, of the wrong type, unknown, or extra arguments.
        assert_eq!(code(sess.genop(&[op(op_type)], &mut [])), ErrorCode::EINVAL);
        assert_eq!(
            code(sess.genop(&[op(op_type), Arg::scalar(model.id() as i32)], &mut [])),
            ErrorCode::EINVAL
        );
        assert_eq!(
            code(sess.genop(&[op(op_type), Arg::scalar(4242i64)], &mut [])),
            ErrorCode::ENOENT
        );
        assert_eq!(
            code(sess.genop(
                &[op(op_type), Arg::scalar(model.id()), Arg::scalar(1i64)],
                &mut []
            )),
            ErrorCode::EINVAL
        );
    }
    // A model that is not registered: EPERM.
    let other = fx.resource("other.pb", ResourceType::Model);
    assert_eq!(
        code(sess.genop(&[op(OpType::TfModelLoad), Arg::scalar(other.id())], &mut [])),
        ErrorCode::EPERM
    );
}

#[test]
fn genop_tf_run_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("saved_model.pb", ResourceType::Model);
    sess.register(&model).unwrap();
    let data = tf_input_data();

    let mut header = [-1i64; 6];
    let mut out = [0xffu8; 20];
    let mut status_code = 0xffu8;
    let mut msg = [0u8; 64];
    {
        let mut write = [
            Arg::out_array(&mut header).unwrap(),
            Arg::new_mut(ArgType::Buffer, &mut out).unwrap(),
            Arg::out_scalar(&mut status_code),
            Arg::new_mut(ArgType::UcharArray, &mut msg).unwrap(),
        ];
        let (r, lines) = logs(|| sess.genop(&tf_run_read(model.id(), &data, 1), &mut write));
        r.unwrap();
        assert_logged(&lines, "[noop] \tNode 0: serving_default_data:0");
        assert_logged(&lines, "[noop] \tNode 0: out0:0");
        // Empty run options mean none.
        assert!(!lines.iter().any(|l| l.contains("Run options")));
    }
    // [data type, nr_dims, byte size, dims...]
    assert_eq!(header, [1, 3, 16, 1, 2, 2]);
    assert_eq!(out[..16].to_vec(), data);
    assert_eq!(out[16..], [0xff; 4]);
    assert_eq!(status_code, 0);
    assert_eq!(read_c_string(&msg), TF_MESSAGE);

    // Without a status; a longer header keeps its tail.
    let mut header = [-1i64; 8];
    let mut out = [0u8; 16];
    {
        let mut write = [Arg::out_array(&mut header).unwrap(), Arg::raw_mut(&mut out)];
        sess.genop(&tf_run_read(model.id(), &data, 1), &mut write)
            .unwrap();
    }
    assert_eq!(header, [1, 3, 16, 1, 2, 2, -1, -1]);
    assert_eq!(out.to_vec(), data);

    // Run options given as a non-empty RAW are logged.
    let mut read = tf_run_read(model.id(), &data, 0);
    read[2] = Arg::raw(b"cfg");
    let (r, lines) = logs(|| sess.genop(&read, &mut []));
    r.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[noop] Run options -> ") && l.ends_with(", 3"))
    );
}

#[test]
fn genop_tf_run_too_small_data_is_erange_with_the_header_filled() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("saved_model.pb", ResourceType::Model);
    sess.register(&model).unwrap();
    let data = tf_input_data();
    let mut header = [0i64; 6];
    let mut out = [0xffu8; 8];
    let err = {
        let mut write = [
            Arg::out_array(&mut header).unwrap(),
            Arg::new_mut(ArgType::Buffer, &mut out).unwrap(),
        ];
        sess.genop(&tf_run_read(model.id(), &data, 1), &mut write)
            .unwrap_err()
    };
    assert_eq!(err.code(), ErrorCode::ERANGE);
    // The header says how much room the data needs.
    assert_eq!(header, [1, 3, 16, 1, 2, 2]);
    assert_eq!(out, [0xff; 8]);

    // A header too short for its dims is an argument error.
    let mut header = [0i64; 5];
    let mut out = [0u8; 16];
    let mut write = [Arg::out_array(&mut header).unwrap(), Arg::raw_mut(&mut out)];
    let err = sess
        .genop(&tf_run_read(model.id(), &data, 1), &mut write)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Arg {
                index: 0,
                source: ArgError::TooSmall { .. }
            }
        ),
        "{err:?}"
    );
}

#[test]
fn genop_tf_run_errors() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("saved_model.pb", ResourceType::Model);
    sess.register(&model).unwrap();
    let data = tf_input_data();
    let pair = || {
        [
            Arg::zeroed(ArgType::Int64Array, 48).unwrap(),
            Arg::zeroed(ArgType::Buffer, 16).unwrap(),
        ]
    };
    // Write count not matching the output nodes.
    assert_eq!(
        code(sess.genop(&tf_run_read(model.id(), &data, 1), &mut [])),
        ErrorCode::EINVAL
    );
    let [h, d] = pair();
    assert_eq!(
        code(sess.genop(
            &tf_run_read(model.id(), &data, 1),
            &mut [h, d, Arg::zeroed(ArgType::Uint8, 1).unwrap()]
        )),
        ErrorCode::EINVAL
    );
    // Two output nodes but a single input to mirror.
    let [h0, d0] = pair();
    let [h1, d1] = pair();
    assert_eq!(
        code(sess.genop(&tf_run_read(model.id(), &data, 2), &mut [h0, d0, h1, d1])),
        ErrorCode::EINVAL
    );
    // nr_inputs larger than the inputs given.
    let mut read = tf_run_read(model.id(), &data, 0);
    read[3] = Arg::scalar(2u32);
    assert_eq!(code(sess.genop(&read, &mut [])), ErrorCode::EINVAL);
    // An unknown tensor data type.
    let mut read = tf_run_read(model.id(), &data, 0);
    read[7] = Arg::scalar(99u32);
    assert_eq!(code(sess.genop(&read, &mut [])), ErrorCode::EINVAL);
    // Tensor data that is neither BUFFER nor RAW.
    let mut read = tf_run_read(model.id(), &data, 0);
    read[8] = Arg::string("x").unwrap();
    assert_eq!(code(sess.genop(&read, &mut [])), ErrorCode::EINVAL);
    // An output node without its id.
    let mut read = tf_run_read(model.id(), &data, 1);
    read.pop();
    let [h, d] = pair();
    assert_eq!(code(sess.genop(&read, &mut [h, d])), ErrorCode::EINVAL);
    // Unregistered model.
    let other = fx.resource("other.pb", ResourceType::Model);
    let [h, d] = pair();
    assert_eq!(
        code(sess.genop(&tf_run_read(other.id(), &data, 1), &mut [h, d])),
        ErrorCode::EPERM
    );
}

// ---------------------------------------------------------------------------------------------
// TensorFlow Lite.

#[test]
fn tflite_typed() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("model.tflite", ResourceType::Model);
    sess.register(&model).unwrap();
    let (r, lines) = logs(|| sess.tflite_model_load(&model));
    r.unwrap();
    assert_eq!(
        noop_lines(&lines),
        [format!(
            "[noop] Calling tflite_model_load for session {}",
            sess.id()
        )]
    );
    let (r, lines) = logs(|| sess.tflite_model_unload(&model));
    r.unwrap();
    assert_eq!(
        noop_lines(&lines),
        [format!(
            "[noop] Calling tflite_model_unload for session {}",
            sess.id()
        )]
    );

    let data = f32s(&[1.0; 6]);
    let input = TfLiteTensor::new(vec![1, 2, 3], TfLiteDataType::Float32, &data[..]).unwrap();
    let (r, lines) = logs(|| sess.tflite_model_run(&model, std::slice::from_ref(&input), 1));
    let out = r.unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.outputs.len(), 1);
    assert_eq!(out.outputs[0], input.clone().into_owned());
    assert_eq!(
        noop_lines(&lines)[..7],
        [
            format!("[noop] Calling tflite_model_run for session {}", sess.id()),
            "[noop] Number of inputs: 1".to_owned(),
            "[noop] \t#dims: 3 -> {".to_owned(),
            "[noop] \t\t1".to_owned(),
            "[noop] \t\t2".to_owned(),
            "[noop] \t\t3".to_owned(),
            "[noop] \t}".to_owned(),
        ]
    );
    assert_logged(&lines, "[noop] \tData type: 1");
    assert_logged(&lines, "[noop] Number of outputs: 1");

    assert!(
        sess.tflite_model_run(&model, &[], 0)
            .unwrap()
            .outputs
            .is_empty()
    );
    assert_eq!(
        code(sess.tflite_model_run(&model, std::slice::from_ref(&input), 2)),
        ErrorCode::EINVAL
    );
    // TFLite dims must fit in int32.
    let big = TfLiteTensor::new(vec![1 << 40], TfLiteDataType::Float32, &data[..]).unwrap();
    assert_eq!(
        code(sess.tflite_model_run(&model, std::slice::from_ref(&big), 1)),
        ErrorCode::EINVAL
    );
}

fn tensor_read<'a>(dims: &[i64], data_type: u32, data: &'a [u8]) -> [Arg<'a>; 3] {
    [
        Arg::owned(
            ArgType::Int64Array,
            dims.iter().flat_map(|d| d.to_ne_bytes()).collect(),
        )
        .unwrap(),
        Arg::scalar(data_type),
        if data.is_empty() {
            Arg::raw(data)
        } else {
            Arg::buffer(data).unwrap()
        },
    ]
}

#[test]
fn genop_tflite_layouts() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("model.tflite", ResourceType::Model);
    sess.register(&model).unwrap();
    for op_type in [OpType::TfliteModelLoad, OpType::TfliteModelUnload] {
        sess.genop(&[op(op_type), Arg::scalar(model.id())], &mut [])
            .unwrap();
        assert_eq!(
            code(sess.genop(
                &[op(op_type), Arg::scalar(model.id())],
                &mut [Arg::zeroed(ArgType::Uint8, 1).unwrap()]
            )),
            ErrorCode::EINVAL,
            "{op_type} takes no write arguments"
        );
    }

    let data = f32s(&[1.0, 2.0, 3.0]);
    let mut read = vec![op(OpType::TfliteModelRun), Arg::scalar(model.id())];
    read.extend(tensor_read(&[3], TfLiteDataType::Float32.value(), &data));
    let mut header = [0i64; 4];
    let mut out = [0u8; 12];
    let mut status = 0xffu8;
    {
        let mut write = [
            Arg::out_array(&mut header).unwrap(),
            Arg::raw_mut(&mut out),
            Arg::out_scalar(&mut status),
        ];
        sess.genop(&read, &mut write).unwrap();
    }
    assert_eq!(header, [1, 1, 12, 3]);
    assert_eq!(out.to_vec(), data);
    assert_eq!(status, 0);

    // Without the status; and with no outputs at all.
    let mut header = [0i64; 4];
    let mut out = [0u8; 12];
    {
        let mut write = [Arg::out_array(&mut header).unwrap(), Arg::raw_mut(&mut out)];
        sess.genop(&read, &mut write).unwrap();
    }
    assert_eq!(out.to_vec(), data);
    sess.genop(&read, &mut []).unwrap();

    // Two outputs from one input.
    let mut write = [
        Arg::zeroed(ArgType::Int64Array, 32).unwrap(),
        Arg::zeroed(ArgType::Raw, 12).unwrap(),
        Arg::zeroed(ArgType::Int64Array, 32).unwrap(),
        Arg::zeroed(ArgType::Raw, 12).unwrap(),
    ];
    assert_eq!(code(sess.genop(&read, &mut write)), ErrorCode::EINVAL);
    // ERANGE when the data does not fit, header still filled.
    let mut header = [0i64; 4];
    let mut small = [0u8; 4];
    let err = {
        let mut write = [
            Arg::out_array(&mut header).unwrap(),
            Arg::raw_mut(&mut small),
        ];
        sess.genop(&read, &mut write).unwrap_err()
    };
    assert_eq!(err.code(), ErrorCode::ERANGE);
    assert_eq!(header, [1, 1, 12, 3]);
    // An incomplete tensor.
    let mut bad = read;
    bad.pop();
    assert_eq!(code(sess.genop(&bad, &mut [])), ErrorCode::EINVAL);
}

// ---------------------------------------------------------------------------------------------
// Torch.

#[test]
fn torch_load_logs_by_blob_type() {
    let fx = Fx::new();
    let sess = fx.session();

    let file = fx.resource("model.pt", ResourceType::Model);
    sess.register(&file).unwrap();
    assert_eq!(file.blobs()[0].kind(), BlobType::File);
    let file_path = path_str(file.blobs()[0].path().unwrap());
    let (r, lines) = logs(|| sess.torch_model_load(&file));
    r.unwrap();
    assert_eq!(
        noop_lines(&lines),
        [
            format!("[noop] Calling torch_model_load for session {}", sess.id()),
            format!("[noop] Loading model from file {file_path}"),
        ]
    );

    let buffer = Resource::from_buf(
        &fx.rt,
        vec![7u8; 1234],
        ResourceType::Model,
        Some("model.pt"),
        true,
    )
    .unwrap();
    sess.register(&buffer).unwrap();
    assert_eq!(buffer.blobs()[0].kind(), BlobType::Buffer);
    let (r, lines) = logs(|| sess.torch_model_load(&buffer));
    r.unwrap();
    assert_logged(&lines, "[noop] Loading model from buffer of length: 1234");

    let mapped = Resource::from_buf(
        &fx.rt,
        vec![7u8; 10],
        ResourceType::Model,
        Some("mapped.pt"),
        false,
    )
    .unwrap();
    sess.register(&mapped).unwrap();
    assert_eq!(mapped.blobs()[0].kind(), BlobType::Mapped);
    let mapped_path = path_str(mapped.blobs()[0].path().unwrap());
    let (r, lines) = logs(|| sess.torch_model_load(&mapped));
    r.unwrap();
    assert_logged(
        &lines,
        &format!("[noop] Mapped model, loading from file {mapped_path}"),
    );

    // Through genop.
    let (r, lines) = logs(|| {
        sess.genop(
            &[op(OpType::TorchModelLoad), Arg::scalar(buffer.id())],
            &mut [],
        )
    });
    r.unwrap();
    assert_logged(&lines, "[noop] Loading model from buffer of length: 1234");
    assert_eq!(
        code(sess.genop(
            &[op(OpType::TorchModelLoad), Arg::scalar(buffer.id())],
            &mut [Arg::zeroed(ArgType::Raw, 4).unwrap()]
        )),
        ErrorCode::EINVAL
    );
}

#[test]
fn torch_run_typed_mirrors_inputs() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("model.pt", ResourceType::Model);
    sess.register(&model).unwrap();
    let data = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let input = TorchTensor::new(vec![1, 3, 2], TorchDataType::Float, &data[..]).unwrap();
    let (r, lines) =
        logs(|| sess.torch_model_run(&model, Some(b"ignored"), std::slice::from_ref(&input), 1));
    let out = r.unwrap();
    assert_eq!(out, vec![input.clone().into_owned()]);
    let noop = noop_lines(&lines);
    assert_eq!(
        noop[..3],
        [
            format!("[noop] Calling torch_model_run for session {}", sess.id()),
            "[noop] Number of inputs: 1".to_owned(),
            "[noop] \t#dims: 3 -> {".to_owned(),
        ]
    );
    assert_logged(&lines, "[noop] \tData type: 7");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[noop] \tData -> 0x") && l.ends_with(", 24 B"))
    );
    assert_logged(&lines, "[noop] Number of outputs: 1");

    assert!(
        sess.torch_model_run(&model, None, &[], 0)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(sess.torch_model_run(&model, None, std::slice::from_ref(&input), 2)),
        ErrorCode::EINVAL
    );
}

#[test]
fn genop_torch_run_layout() {
    let fx = Fx::new();
    let sess = fx.session();
    let model = fx.resource("model.pt", ResourceType::Model);
    sess.register(&model).unwrap();
    let d0 = f32s(&[1.0, 2.0]);
    let d1 = vec![9u8; 3];
    let mut read = vec![
        op(OpType::TorchModelRun),
        Arg::scalar(model.id()),
        Arg::raw(&[]),
    ];
    read.extend(tensor_read(&[2], TorchDataType::Float.value(), &d0));
    read.extend(tensor_read(&[1, 3], TorchDataType::Byte.value(), &d1));

    let mut h0 = [0i64; 4];
    let mut o0 = [0u8; 8];
    let mut h1 = [0i64; 5];
    let mut o1 = [0u8; 3];
    {
        let mut write = [
            Arg::out_array(&mut h0).unwrap(),
            Arg::raw_mut(&mut o0),
            Arg::out_array(&mut h1).unwrap(),
            Arg::new_mut(ArgType::Buffer, &mut o1).unwrap(),
        ];
        sess.genop(&read, &mut write).unwrap();
    }
    assert_eq!(h0, [7, 1, 8, 2]);
    assert_eq!(o0.to_vec(), d0);
    assert_eq!(h1, [1, 2, 3, 1, 3]);
    assert_eq!(o1.to_vec(), d1);

    // A BUFFER for run options is accepted too; outputs come in pairs.
    read[2] = Arg::buffer(b"opts").unwrap();
    sess.genop(&read, &mut []).unwrap();
    assert_eq!(
        code(sess.genop(&read, &mut [Arg::zeroed(ArgType::Int64Array, 32).unwrap()])),
        ErrorCode::EINVAL
    );
    // More outputs than inputs.
    let mut write: Vec<_> = (0..3)
        .flat_map(|_| {
            [
                Arg::zeroed(ArgType::Int64Array, 40).unwrap(),
                Arg::zeroed(ArgType::Raw, 8).unwrap(),
            ]
        })
        .collect();
    assert_eq!(code(sess.genop(&read, &mut write)), ErrorCode::EINVAL);
    // Run options missing (read ends after the id).
    assert_eq!(
        code(sess.genop(
            &[op(OpType::TorchModelRun), Arg::scalar(model.id())],
            &mut []
        )),
        ErrorCode::EINVAL
    );
}

#[test]
fn torch_sgemm_typed_and_genop() {
    let fx = Fx::new();
    let sess = fx.session();
    let data = f32s(&[1.0; 4]);
    let t = TorchTensor::new(vec![2, 2], TorchDataType::Float, &data[..]).unwrap();
    let (r, lines) = logs(|| sess.torch_sgemm(&t, &t, &t, 2, 2, 2));
    assert!(r.unwrap().is_none());
    assert_eq!(
        noop_lines(&lines),
        [
            format!("[noop] Calling torch_sgemm for session {}", sess.id()),
            "[noop] Dumping arguments for torch_sgemm:".to_owned(),
            "[noop] m: 2 n: 2 k: 2".to_owned(),
        ]
    );
    assert_eq!(
        code(sess.torch_sgemm(&t, &t, &t, -1, 2, 2)),
        ErrorCode::EINVAL
    );

    let mut read = vec![op(OpType::TorchSgemm)];
    for _ in 0..3 {
        read.extend(tensor_read(&[2, 2], TorchDataType::Float.value(), &data));
    }
    read.extend([Arg::scalar(2i32), Arg::scalar(3i32), Arg::scalar(4i32)]);
    let (r, lines) = logs(|| sess.genop(&read, &mut []));
    r.unwrap();
    assert_logged(&lines, "[noop] m: 2 n: 3 k: 4");
    // An optional output tensor is left untouched: noop produces none.
    let mut header = [-5i64; 5];
    let mut out = [0xabu8; 16];
    {
        let mut write = [Arg::out_array(&mut header).unwrap(), Arg::raw_mut(&mut out)];
        sess.genop(&read, &mut write).unwrap();
    }
    assert_eq!(header, [-5; 5]);
    assert_eq!(out, [0xab; 16]);
    // Wrong counts.
    assert_eq!(
        code(sess.genop(&read, &mut [Arg::zeroed(ArgType::Raw, 4).unwrap()])),
        ErrorCode::EINVAL
    );
    let mut short = read;
    short.pop();
    assert_eq!(code(sess.genop(&short, &mut [])), ErrorCode::EINVAL);
    // m as INT64 is the wrong type.
    short.push(Arg::scalar(4i64));
    assert_eq!(code(sess.genop(&short, &mut [])), ErrorCode::EINVAL);
}

// ---------------------------------------------------------------------------------------------
// Every op through one session, counted by the runtime's profiling regions.

#[test]
fn every_op_reaches_the_plugin_and_is_profiled() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .config(Config::default().with_profiling(true))
        .plugin(Arc::new(NoopPlugin::new()))
        .build()
        .unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    let model_path = dir.path().join("m.bin");
    std::fs::write(&model_path, b"m").unwrap();
    let model = Resource::new(&rt, model_path.to_str().unwrap(), ResourceType::Model).unwrap();
    let lib = Resource::new(&rt, model_path.to_str().unwrap(), ResourceType::Lib).unwrap();
    sess.register(&model).unwrap();
    sess.register(&lib).unwrap();
    let data = f32s(&[1.0; 4]);
    let tf = TfTensor::new(vec![4], TfDataType::Float, &data[..]).unwrap();
    let tfl = TfLiteTensor::new(vec![4], TfLiteDataType::Float32, &data[..]).unwrap();
    let tt = TorchTensor::new(vec![4], TorchDataType::Float, &data[..]).unwrap();
    let node = [TfNode::new("n", 0)];

    sess.noop().unwrap();
    sess.exec("l", "s", &[], &mut []).unwrap();
    sess.exec_with_resource(&lib, "s", &[], &mut []).unwrap();
    sess.image_classify(b"i", &mut [0; 8], &mut [0; 8]).unwrap();
    sess.image_detect(b"i", &mut [0; 8]).unwrap();
    sess.image_segment(b"i", &mut [0; 8]).unwrap();
    sess.image_pose(b"i", &mut [0; 8]).unwrap();
    sess.image_depth(b"i", &mut [0; 8]).unwrap();
    sess.tf_model_load(&model).unwrap();
    sess.tf_model_unload(&model).unwrap();
    sess.tf_model_run(&model, None, &node, std::slice::from_ref(&tf), &node)
        .unwrap();
    sess.tflite_model_load(&model).unwrap();
    sess.tflite_model_unload(&model).unwrap();
    sess.tflite_model_run(&model, std::slice::from_ref(&tfl), 1)
        .unwrap();
    sess.torch_model_load(&model).unwrap();
    sess.torch_model_run(&model, None, std::slice::from_ref(&tt), 1)
        .unwrap();
    sess.torch_sgemm(&tt, &tt, &tt, 1, 1, 1).unwrap();
    sess.sgemm(&sgemm_args(), &mut [0.0; 4]).unwrap();
    sess.fpga_arraycopy(&[1], &mut [0]).unwrap();
    sess.fpga_mmult(&[1.0], &[1.0], &mut [0.0]).unwrap();
    sess.fpga_parallel(&[1.0], &[1.0], &mut [0.0], &mut [0.0])
        .unwrap();
    sess.fpga_vadd(&[1.0], &[1.0], &mut [0.0]).unwrap();
    sess.minmax(&[1.0], 0, 1, &mut [0.0]).unwrap();
    sess.opencv(&[], &mut []).unwrap();

    for op_type in OpType::ALL {
        let expected = if op_type.value() >= OpType::ImageClassify.value()
            && op_type.value() <= OpType::ImageDepth.value()
        {
            5 // the image ops share one region
        } else {
            1
        };
        assert_eq!(
            rt.op_regions().region(*op_type).nr_entries(),
            expected,
            "{op_type}"
        );
    }
}

#[test]
fn resources_without_blobs() {
    let fx = Fx::new();
    let sess = fx.session();
    // A directory resource over an empty directory registers with no blobs at all.
    let empty = fx.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let model = Resource::new(&fx.rt, empty.to_str().unwrap(), ResourceType::Model).unwrap();
    sess.register(&model).unwrap();
    assert!(model.blobs().is_empty());
    // Upstream reads blobs[0] regardless; noop refuses to load a model that has nothing.
    assert_eq!(code(sess.torch_model_load(&model)), ErrorCode::EINVAL);
    assert_eq!(
        code(sess.genop(
            &[op(OpType::TorchModelLoad), Arg::scalar(model.id())],
            &mut []
        )),
        ErrorCode::EINVAL
    );
    // Image ops only log the model, so an empty one shows as (null).
    let (r, lines) = logs(|| sess.image_pose(b"img", &mut [0; 32]));
    r.unwrap();
    assert_logged(&lines, "[noop] model: (null)");

    let lib = Resource::new(&fx.rt, empty.to_str().unwrap(), ResourceType::Lib).unwrap();
    sess.register(&lib).unwrap();
    let (r, lines) = logs(|| sess.exec_with_resource(&lib, "f", &[], &mut []));
    r.unwrap();
    assert_logged(&lines, "[noop] library: (null) symbol: f");
    assert!(!lines.iter().any(|l| l.contains("dep library")));
}
