//! Every operation through the rpc plugin against a fake agent that runs it on the noop
//! plugin: the outputs are noop's, and the genop layouts are the ones `vaccel_core::genop`
//! decodes (the fake agent unpacks them with it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use support::{FIRST_RESOURCE, FakeAgent, genop_layout};
use vaccel_core::arg::{Arg, read_c_string};
use vaccel_core::{
    ArgType, OpType, Resource, ResourceType, Runtime, Session, SgemmArgs, TfDataType,
    TfLiteDataType, TfLiteTensor, TfNode, TfTensor, TorchDataType, TorchTensor,
};
use vaccel_plugin_noop::{
    DUMMY_CLASSIFICATION_TAG, DUMMY_IMGNAME, DUMMY_MINMAX, DUMMY_MMULT_VALUE, TF_STATUS_MESSAGE,
};
use vaccel_plugin_rpc::RpcPlugin;
use vaccel_rpc::proto::vaccel as pv;

struct Setup {
    agent: FakeAgent,
    _rt: Runtime,
    sess: Arc<Session>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    setup_with(true)
}

/// `extensions`: the agent answers `GetCapabilities` as ours, or as upstream's.
fn setup_with(extensions: bool) -> Setup {
    let agent = FakeAgent::start(extensions);
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .rundir_base(dir.path())
        .skip_logging()
        .plugin(Arc::new(RpcPlugin::with_address(agent.address.clone())))
        .build()
        .unwrap();
    let sess = Session::new(&rt, 0).unwrap();
    Setup {
        agent,
        _rt: rt,
        sess,
        _dir: dir,
    }
}

use ArgType::*;

fn types(ts: &[ArgType]) -> Vec<u32> {
    ts.iter().map(|t| t.value()).collect()
}

/// The last genop's layout: (read types, write types), and its op byte.
fn last_genop(agent: &FakeAgent) -> (u8, Vec<u32>, Vec<u32>) {
    let req = agent.last("Genop");
    let r: pv::genop::Request = req.decode();
    let (read, write) = genop_layout(&req);
    (r.read_args[0].buf[0], read, write)
}

#[test]
fn noop_goes_through_genop() {
    let s = setup();
    s.sess.noop().unwrap();
    let (op, read, write) = last_genop(&s.agent);
    assert_eq!(op, OpType::Noop.value());
    assert_eq!((read, write), (types(&[Uint8]), vec![]));
    let r: pv::genop::Request = s.agent.last("Genop").decode();
    assert_eq!(r.session_id, s.sess.remote_id());
}

#[test]
fn detection_records_travel_to_an_agent_that_has_them() {
    let s = setup();
    let found = s.sess.image_detect_objects(b"img", &mut [0u8; 64]).unwrap();
    assert!(found.is_empty(), "noop finds nothing");
    let (op, read, write) = last_genop(&s.agent);
    assert_eq!(op, OpType::ImageDetect.value());
    assert_eq!(read, types(&[Uint8, Buffer]));
    assert_eq!(write, types(&[UcharArray, UcharArray]));
}

#[test]
fn upstream_agents_get_only_upstreams_layouts() {
    let s = setup_with(false);
    // Upstream's plugin offers neither noop nor torch_sgemm, and upstream's agent refuses them.
    assert_eq!(
        s.sess.noop().unwrap_err().code(),
        vaccel_core::ErrorCode::ENOTSUP
    );
    let data = [0u8; 16];
    let t = TorchTensor::new(vec![2, 2], TorchDataType::Float, &data[..]).unwrap();
    assert_eq!(
        s.sess.torch_sgemm(&t, &t, &t, 2, 2, 2).unwrap_err().code(),
        vaccel_core::ErrorCode::ENOTSUP
    );
    assert!(!s.agent.methods().iter().any(|m| m == "Genop"));
    // Detection: one write argument, as upstream's agent demands; no records come back.
    let mut name = [0u8; 64];
    let found = s.sess.image_detect_objects(b"img", &mut name).unwrap();
    assert!(found.is_empty());
    assert_eq!(read_c_string(&name), DUMMY_IMGNAME);
    let (op, read, write) = last_genop(&s.agent);
    assert_eq!(op, OpType::ImageDetect.value());
    assert_eq!(
        (read, write),
        (types(&[Uint8, Buffer]), types(&[UcharArray]))
    );
    assert!(s.agent.requests().iter().all(|r| r.metadata.is_empty()));
}

#[test]
fn image_classification_with_any_output_size() {
    let s = setup();
    for (text_len, name_len) in [(512, 512), (2048, 100), (10, 4), (64, 0)] {
        let mut text = vec![0u8; text_len];
        let mut name = vec![0u8; name_len];
        s.sess
            .image_classify(b"fake jpeg", &mut text, &mut name)
            .unwrap();
        let want_text =
            &DUMMY_CLASSIFICATION_TAG[..DUMMY_CLASSIFICATION_TAG.len().min(text_len - 1)];
        assert_eq!(read_c_string(&text), want_text);
        if name_len > 0 {
            let want = &DUMMY_IMGNAME[..DUMMY_IMGNAME.len().min(name_len - 1)];
            assert_eq!(read_c_string(&name), want);
        }
        let r: pv::genop::Request = s.agent.last("Genop").decode();
        assert_eq!(r.read_args[0].buf[..], [OpType::ImageClassify.value()]);
        assert_eq!(&r.read_args[1].buf[..], b"fake jpeg");
        assert_eq!(r.write_args[0].buf.len(), name_len.max(1));
        assert_eq!(r.write_args[1].buf.len(), text_len);
        let (_, read, write) = last_genop(&s.agent);
        assert_eq!(
            (read, write),
            (types(&[Uint8, Buffer]), types(&[UcharArray, UcharArray]))
        );
    }
}

#[test]
fn image_ops() {
    let s = setup();
    for op in [
        OpType::ImageDetect,
        OpType::ImageSegment,
        OpType::ImagePose,
        OpType::ImageDepth,
    ] {
        let mut name = [0u8; 300];
        match op {
            OpType::ImageDetect => s.sess.image_detect(b"img", &mut name),
            OpType::ImageSegment => s.sess.image_segment(b"img", &mut name),
            OpType::ImagePose => s.sess.image_pose(b"img", &mut name),
            _ => s.sess.image_depth(b"img", &mut name),
        }
        .unwrap();
        assert_eq!(read_c_string(&name), DUMMY_IMGNAME);
        let (byte, read, write) = last_genop(&s.agent);
        assert_eq!(byte, op.value());
        assert_eq!(
            (read, write),
            (types(&[Uint8, Buffer]), types(&[UcharArray]))
        );
    }
}

#[test]
fn generic_calls_are_repacked_the_same_way() {
    let s = setup();
    let mut text = [0u8; 128];
    let mut name = [0u8; 128];
    let read = [
        Arg::scalar(OpType::ImageClassify.value()),
        Arg::buffer(b"img").unwrap(),
    ];
    {
        let mut write = [
            Arg::new_mut(UcharArray, &mut name).unwrap(),
            Arg::new_mut(UcharArray, &mut text).unwrap(),
        ];
        s.sess.genop(&read, &mut write).unwrap();
    }
    assert_eq!(read_c_string(&text), DUMMY_CLASSIFICATION_TAG);
    assert_eq!(read_c_string(&name), DUMMY_IMGNAME);
}

#[test]
fn sgemm_layout() {
    let s = setup();
    let a = [1f32; 6];
    let b = [2f32; 6];
    let mut c = [7f32; 4];
    let args = SgemmArgs {
        m: 2,
        n: 2,
        k: 3,
        alpha: 1.5,
        a: &a,
        lda: 3,
        b: &b,
        ldb: 2,
        beta: 0.5,
        ldc: 2,
    };
    s.sess.sgemm(&args, &mut c).unwrap();
    assert_eq!(
        c, [7f32; 4],
        "noop leaves C alone, and it comes back intact"
    );
    let (byte, read, write) = last_genop(&s.agent);
    assert_eq!(byte, OpType::BlasSgemm.value());
    assert_eq!(
        read,
        types(&[
            Uint8,
            Int64,
            Int64,
            Int64,
            Float32,
            Float32Array,
            Int64,
            Float32Array,
            Int64,
            Float32,
            Int64
        ])
    );
    assert_eq!(write, types(&[Float32Array]));
    let r: pv::genop::Request = s.agent.last("Genop").decode();
    assert_eq!(r.read_args[1].buf[..], 2i64.to_ne_bytes());
    assert_eq!(r.read_args[4].buf[..], 1.5f32.to_ne_bytes());
    assert_eq!(r.read_args[5].buf.len(), 24);
}

#[test]
fn fpga_ops() {
    let s = setup();
    let a = [1i32, 2, 3];
    let mut out = [0i32; 3];
    s.sess.fpga_arraycopy(&a, &mut out).unwrap();
    assert_eq!(out, a);
    assert_eq!(
        last_genop(&s.agent),
        (
            OpType::FpgaArraycopy.value(),
            types(&[Uint8, Int32Array]),
            types(&[Int32Array])
        )
    );
    let (x, y) = ([1f32, 2.0], [10f32, 20.0]);
    let mut c = [0f32; 2];
    s.sess.fpga_mmult(&x, &y, &mut c).unwrap();
    assert_eq!(c, [DUMMY_MMULT_VALUE; 2]);
    s.sess.fpga_vadd(&x, &y, &mut c).unwrap();
    assert_eq!(c, [11.0, 22.0]);
    assert_eq!(
        last_genop(&s.agent),
        (
            OpType::FpgaVectoradd.value(),
            types(&[Uint8, Float32Array, Float32Array]),
            types(&[Float32Array])
        )
    );
    let (mut add, mut mult) = ([0f32; 2], [0f32; 2]);
    s.sess.fpga_parallel(&x, &y, &mut add, &mut mult).unwrap();
    assert_eq!((add, mult), ([11.0, 22.0], [1.0, 1.0]));
    assert_eq!(last_genop(&s.agent).2, types(&[Float32Array, Float32Array]));
}

#[test]
fn minmax_returns_min_max_and_the_copy() {
    let s = setup();
    let input = [3.0, -2.0, 8.5];
    let mut out = [0f64; 3];
    let (min, max) = s.sess.minmax(&input, 1, 9, &mut out).unwrap();
    assert_eq!((min, max), DUMMY_MINMAX);
    assert_eq!(out, input);
    assert_eq!(
        last_genop(&s.agent),
        (
            OpType::Minmax.value(),
            types(&[Uint8, Float64Array, Int32, Int32, Int32]),
            types(&[Float64Array, Float64, Float64])
        )
    );
}

#[test]
fn opencv_passes_arguments_through() {
    let s = setup();
    let read = [Arg::scalar(1u32), Arg::buffer(b"frame").unwrap()];
    let mut buf = [0u8; 16];
    {
        let mut write = [Arg::new_mut(Buffer, &mut buf).unwrap()];
        s.sess.opencv(&read, &mut write).unwrap();
    }
    // noop writes size / sizeof(float) as a size_t header.
    assert_eq!(buf[..8], 4u64.to_ne_bytes());
    assert_eq!(
        last_genop(&s.agent),
        (
            OpType::Opencv.value(),
            types(&[Uint8, Uint32, Buffer]),
            types(&[Buffer])
        )
    );
}

#[test]
fn exec_resolves_the_library_on_the_agent() {
    let s = setup();
    let read = [Arg::scalar(7i32)];
    let mut out = [0u8; 4];
    {
        let mut write = [Arg::raw_mut(&mut out)];
        s.sess
            .exec(
                "/agent/side/libmytestlib.so",
                "mytestfunc",
                &read,
                &mut write,
            )
            .unwrap();
    }
    assert_eq!(out, 7i32.to_ne_bytes(), "noop's dummy output = input");
    let r: pv::genop::Request = s.agent.last("Genop").decode();
    assert_eq!(&r.read_args[1].buf[..], b"/agent/side/libmytestlib.so\0");
    assert_eq!(&r.read_args[2].buf[..], b"mytestfunc\0");
    assert_eq!(
        last_genop(&s.agent),
        (
            OpType::Exec.value(),
            types(&[Uint8, String, String, Int32]),
            types(&[Raw])
        )
    );
}

#[test]
fn exec_with_resource_names_the_agents_resource() {
    let s = setup();
    let lib = Resource::from_buf(
        s.sess.runtime(),
        Bytes::from_static(b"ELF"),
        ResourceType::Lib,
        Some("libx.so"),
        false,
    )
    .unwrap();
    s.sess.register(&lib).unwrap();
    assert_eq!(lib.remote_id(), FIRST_RESOURCE);
    assert_ne!(lib.id(), lib.remote_id());
    let read = [Arg::scalar(5i32)];
    let mut out = [0u8; 4];
    {
        let mut write = [Arg::raw_mut(&mut out)];
        s.sess
            .exec_with_resource(&lib, "mytestfunc", &read, &mut write)
            .unwrap();
    }
    assert_eq!(out, 5i32.to_ne_bytes());
    let r: pv::genop::Request = s.agent.last("Genop").decode();
    assert_eq!(r.read_args[1].buf[..], FIRST_RESOURCE.to_ne_bytes());
    assert_eq!(
        last_genop(&s.agent),
        (
            OpType::ExecWithResource.value(),
            types(&[Uint8, Int64, String, Int32]),
            types(&[Raw])
        )
    );
}

#[test]
fn torch_sgemm_goes_through_genop() {
    let s = setup();
    let data = [0u8; 16];
    let t = TorchTensor::new(vec![2, 2], TorchDataType::Float, &data[..]).unwrap();
    let out = s.sess.torch_sgemm(&t, &t, &t, 2, 2, 2).unwrap();
    assert!(out.is_none(), "noop returns no tensor");
    let (byte, read, write) = last_genop(&s.agent);
    assert_eq!(byte, OpType::TorchSgemm.value());
    let tensor = [Int64Array, Uint32, Buffer];
    let mut want = vec![Uint8];
    for _ in 0..3 {
        want.extend_from_slice(&tensor);
    }
    want.extend_from_slice(&[Int32, Int32, Int32]);
    assert_eq!(read, types(&want));
    assert_eq!(write, types(&[Int64Array, Buffer]));
}

fn model(s: &Setup) -> Arc<Resource> {
    let m = Resource::from_buf(
        s.sess.runtime(),
        Bytes::from_static(b"weights"),
        ResourceType::Model,
        Some("model.bin"),
        false,
    )
    .unwrap();
    s.sess.register(&m).unwrap();
    m
}

#[test]
fn tensorflow_uses_its_rpcs() {
    let s = setup();
    let m = model(&s);
    let st = s.sess.tf_model_load(&m).unwrap();
    assert_eq!((st.code, st.message.as_str()), (0, TF_STATUS_MESSAGE));
    let r: pv::tf::ModelLoadRequest = s.agent.last("TensorflowModelLoad").decode();
    assert_eq!(
        (r.session_id, r.model_id),
        (s.sess.remote_id(), m.remote_id())
    );
    let bytes: Vec<u8> = (0..24).collect();
    let input = TfTensor::new(vec![2, 3], TfDataType::Float, &bytes[..]).unwrap();
    let out = s
        .sess
        .tf_model_run(
            &m,
            Some(b"opts"),
            &[TfNode::new("serving_default_input", 0)],
            std::slice::from_ref(&input),
            &[TfNode::new("StatefulPartitionedCall", 0)],
        )
        .unwrap();
    assert_eq!(out.outputs, [input.into_owned()]);
    assert_eq!(out.status.message, TF_STATUS_MESSAGE);
    let r: pv::tf::ModelRunRequest = s.agent.last("TensorflowModelRun").decode();
    assert_eq!(r.run_options.as_deref(), Some(&b"opts"[..]));
    assert_eq!(r.in_nodes[0].name, "serving_default_input");
    assert_eq!(r.out_nodes[0].name, "StatefulPartitionedCall");
    assert_eq!(r.in_tensors[0].r#type, TfDataType::Float.value() as i32);
    s.sess.tf_model_unload(&m).unwrap();
    assert!(
        s.agent
            .methods()
            .contains(&"TensorflowModelUnload".to_owned())
    );
}

#[test]
fn tflite_sends_vaccel_type_values() {
    let s = setup();
    let m = model(&s);
    s.sess.tflite_model_load(&m).unwrap();
    let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let input = TfLiteTensor::new(vec![1, 2], TfLiteDataType::Float32, &bytes[..]).unwrap();
    let out = s
        .sess
        .tflite_model_run(&m, std::slice::from_ref(&input), 1)
        .unwrap();
    assert_eq!(out.outputs, [input.into_owned()]);
    assert_eq!(out.status, 0);
    let r: pv::tflite::ModelRunRequest = s.agent.last("TensorflowLiteModelRun").decode();
    // vAccel's FLOAT32 is 1 (upstream's proto calls 1 NOTYPE: the number is what counts).
    assert_eq!(r.in_tensors[0].r#type, 1);
    assert_eq!(r.in_tensors[0].dims, [1, 2]);
    assert_eq!(r.nr_out_tensors, 1);
    s.sess.tflite_model_unload(&m).unwrap();
    assert!(
        s.agent
            .methods()
            .contains(&"TensorflowLiteModelUnload".to_owned())
    );
}

#[test]
fn torch_uses_its_rpcs() {
    let s = setup();
    let m = model(&s);
    s.sess.torch_model_load(&m).unwrap();
    let r: pv::torch::ModelLoadRequest = s.agent.last("TorchModelLoad").decode();
    assert_eq!(r.model_id, m.remote_id());
    let bytes = [9u8; 12];
    let input = TorchTensor::new(vec![3], TorchDataType::Int, &bytes[..]).unwrap();
    let out = s
        .sess
        .torch_model_run(&m, None, &[input.clone(), input.clone()], 2)
        .unwrap();
    assert_eq!(out, [input.clone().into_owned(), input.into_owned()]);
    let r: pv::torch::ModelRunRequest = s.agent.last("TorchModelRun").decode();
    assert_eq!(r.run_options, None);
    assert_eq!(r.in_tensors[0].r#type, TorchDataType::Int.value() as i32);
}

#[test]
fn large_arguments_are_chunked_to_our_agent() {
    let s = setup();
    let image = vec![0x5au8; 20 << 20];
    let mut name = [0u8; 64];
    s.sess.image_detect(&image, &mut name).unwrap();
    assert_eq!(read_c_string(&name), DUMMY_IMGNAME);
    let req = s.agent.last("Genop");
    assert!(req.chunked);
    let r: pv::genop::Request = req.decode();
    assert_eq!(r.read_args[1].buf.len(), 20 << 20);
}
