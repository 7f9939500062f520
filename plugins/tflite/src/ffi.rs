//! The LiteRT C API of `libLiteRt.so` (PyPI `ai-edge-litert==2.3.0`), loaded at run time, and
//! the owned wrappers the rest of the crate uses. The only module of the crate with `unsafe`.
//!
//! Signatures, enum values and struct layouts come from `litert/c/*.h` of LiteRT 2.3.0
//! (`litert_version.h`: 2.3.0; the headers where `LiteRtCreateModelFromBuffer` takes the
//! environment first and `LiteRtLayout` packs `rank : 7` and `has_strides : 1` into one word).
//!
//! Ownership, as the headers state it: the caller owns what a `Create*` call returns and
//! destroys it with the matching `Destroy*`; buffer requirements stay owned by their compiled
//! model; opaque options added to compilation options belong to them; a model built from a
//! buffer borrows the buffer for its whole life, and a compiled model borrows its model.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use libloading::Library;

use crate::error::{LiteRtStatus, TfliteError};

/// `LITERT_TENSOR_MAX_RANK` (`litert_layout.h`).
pub(crate) const MAX_RANK: usize = 8;

/// `kLiteRtStatusOk`.
const STATUS_OK: c_int = 0;
/// `kLiteRtHwAcceleratorCpu` (`litert_common.h`).
const HW_ACCELERATOR_CPU: c_int = 1;
/// `kLiteRtTensorBufferLockModeRead`.
const LOCK_MODE_READ: c_int = 0;
/// `kLiteRtTensorBufferLockModeWrite`.
const LOCK_MODE_WRITE: c_int = 1;
/// The opaque-options identifier of the CPU (XNNPACK) accelerator's options: what
/// `LrtGetCpuOptionsIdentifier()` returns. The payload is TOML text (`num_threads = N`), the
/// form `LrtGetOpaqueCpuOptionsData` builds; that helper itself is not exported.
const CPU_OPTIONS_ID: &CStr = c"xnnpack";
/// Alignment of the copy of the model bytes (`LITERT_HOST_MEMORY_BUFFER_ALIGNMENT`): tensors
/// of constant data point into it.
const MODEL_ALIGN: usize = 64;

macro_rules! handles {
    ($($name:ident),* $(,)?) => {$(
        #[allow(non_camel_case_types)]
        pub(crate) enum $name {}
    )*};
}
// Opaque object types behind LiteRT's handles (`LITERT_DEFINE_HANDLE`).
handles!(
    LiteRtEnvironmentT,
    LiteRtModelT,
    LiteRtSignatureT,
    LiteRtSubgraphT,
    LiteRtTensorT,
    LiteRtOptionsT,
    LiteRtOpaqueOptionsT,
    LiteRtCompiledModelT,
    LiteRtTensorBufferT,
    LiteRtTensorBufferRequirementsT,
);
type LiteRtEnvironment = *mut LiteRtEnvironmentT;
type LiteRtModel = *mut LiteRtModelT;
type LiteRtSignature = *mut LiteRtSignatureT;
type LiteRtSubgraph = *mut LiteRtSubgraphT;
type LiteRtTensor = *mut LiteRtTensorT;
type LiteRtOptions = *mut LiteRtOptionsT;
type LiteRtOpaqueOptions = *mut LiteRtOpaqueOptionsT;
type LiteRtCompiledModel = *mut LiteRtCompiledModelT;
type LiteRtTensorBuffer = *mut LiteRtTensorBufferT;
type LiteRtTensorBufferRequirements = *mut LiteRtTensorBufferRequirementsT;
/// `LiteRtParamIndex` (`size_t`).
type ParamIndex = usize;
/// `void (*)(void*)`: payload destructors.
type Destructor = Option<unsafe extern "C" fn(*mut c_void)>;

/// `LiteRtLayout`. GCC and Clang pack `unsigned int rank : 7; bool has_strides : 1;` into the
/// low byte of the first 32-bit word (LSB first on the little-endian targets the wheel ships
/// for), so the dimensions start at offset 4 and the struct is 68 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiteRtLayout {
    rank_and_flags: u32,
    dimensions: [i32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

/// `LiteRtRankedTensorType`: element type (`LiteRtElementType`, an `int` enum) and layout.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiteRtRankedTensorType {
    element_type: c_int,
    layout: LiteRtLayout,
}

// The sizes upstream static-asserts for non-MSVC 64-bit builds.
const _: () = assert!(std::mem::size_of::<LiteRtLayout>() == 68);
const _: () = assert!(std::mem::size_of::<LiteRtRankedTensorType>() == 72);
const _: () = assert!(std::mem::offset_of!(LiteRtRankedTensorType, layout) == 4);

impl LiteRtLayout {
    fn zeroed() -> Self {
        LiteRtLayout {
            rank_and_flags: 0,
            dimensions: [0; MAX_RANK],
            strides: [0; MAX_RANK],
        }
    }
}

impl LiteRtRankedTensorType {
    fn zeroed() -> Self {
        LiteRtRankedTensorType {
            element_type: 0,
            layout: LiteRtLayout::zeroed(),
        }
    }

    fn rank(&self) -> usize {
        (self.layout.rank_and_flags & 0x7f) as usize
    }
}

/// Declares the function table and its loader: one field per C function, same name minus the
/// `LiteRt` prefix in snake case, the C name next to it for grep.
macro_rules! api {
    ($($field:ident = $sym:literal : fn($($arg:ty),* $(,)?) $(-> $ret:ty)?;)*) => {
        /// Pointers to the LiteRT functions this crate calls.
        struct Api {
            $($field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Api {
            fn load(lib: &Library, path: &Path) -> Result<Api, TfliteError> {
                Ok(Api {
                    $($field: {
                        // SAFETY: the type is the C signature of this symbol in LiteRT 2.3.0's
                        // headers (see the module docs); the pointer is only called while the
                        // `Library` stays loaded, which `LiteRt` guarantees by owning both.
                        let f = unsafe {
                            lib.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                                concat!($sym, "\0").as_bytes(),
                            )
                        };
                        *f.map_err(|source| TfliteError::MissingSymbol {
                            path: path.to_path_buf(),
                            symbol: $sym,
                            source,
                        })?
                    },)*
                })
            }
        }
    };
}

api! {
    create_environment = "LiteRtCreateEnvironment":
        fn(c_int, *const c_void, *mut LiteRtEnvironment) -> c_int;
    destroy_environment = "LiteRtDestroyEnvironment": fn(LiteRtEnvironment);
    create_model_from_buffer = "LiteRtCreateModelFromBuffer":
        fn(LiteRtEnvironment, *const c_void, usize, *mut LiteRtModel) -> c_int;
    destroy_model = "LiteRtDestroyModel": fn(LiteRtModel);
    get_num_model_signatures = "LiteRtGetNumModelSignatures":
        fn(LiteRtModel, *mut ParamIndex) -> c_int;
    get_model_signature = "LiteRtGetModelSignature":
        fn(LiteRtModel, ParamIndex, *mut LiteRtSignature) -> c_int;
    get_signature_subgraph = "LiteRtGetSignatureSubgraph":
        fn(LiteRtSignature, *mut LiteRtSubgraph) -> c_int;
    get_num_signature_inputs = "LiteRtGetNumSignatureInputs":
        fn(LiteRtSignature, *mut ParamIndex) -> c_int;
    get_signature_input_tensor_by_index = "LiteRtGetSignatureInputTensorByIndex":
        fn(LiteRtSignature, ParamIndex, *mut LiteRtTensor) -> c_int;
    get_num_signature_outputs = "LiteRtGetNumSignatureOutputs":
        fn(LiteRtSignature, *mut ParamIndex) -> c_int;
    get_signature_output_tensor_by_index = "LiteRtGetSignatureOutputTensorByIndex":
        fn(LiteRtSignature, ParamIndex, *mut LiteRtTensor) -> c_int;
    get_num_subgraph_inputs = "LiteRtGetNumSubgraphInputs":
        fn(LiteRtSubgraph, *mut ParamIndex) -> c_int;
    get_subgraph_input = "LiteRtGetSubgraphInput":
        fn(LiteRtSubgraph, ParamIndex, *mut LiteRtTensor) -> c_int;
    get_num_subgraph_outputs = "LiteRtGetNumSubgraphOutputs":
        fn(LiteRtSubgraph, *mut ParamIndex) -> c_int;
    get_subgraph_output = "LiteRtGetSubgraphOutput":
        fn(LiteRtSubgraph, ParamIndex, *mut LiteRtTensor) -> c_int;
    get_tensor_name = "LiteRtGetTensorName": fn(LiteRtTensor, *mut *const c_char) -> c_int;
    get_tensor_index = "LiteRtGetTensorIndex": fn(LiteRtTensor, *mut u32) -> c_int;
    get_ranked_tensor_type = "LiteRtGetRankedTensorType":
        fn(LiteRtTensor, *mut LiteRtRankedTensorType) -> c_int;
    create_options = "LiteRtCreateOptions": fn(*mut LiteRtOptions) -> c_int;
    destroy_options = "LiteRtDestroyOptions": fn(LiteRtOptions);
    set_options_hardware_accelerators = "LiteRtSetOptionsHardwareAccelerators":
        fn(LiteRtOptions, c_int) -> c_int;
    create_opaque_options = "LiteRtCreateOpaqueOptions":
        fn(*const c_char, *mut c_void, Destructor, *mut LiteRtOpaqueOptions) -> c_int;
    destroy_opaque_options = "LiteRtDestroyOpaqueOptions": fn(LiteRtOpaqueOptions);
    add_opaque_options = "LiteRtAddOpaqueOptions":
        fn(LiteRtOptions, LiteRtOpaqueOptions) -> c_int;
    create_compiled_model = "LiteRtCreateCompiledModel":
        fn(LiteRtEnvironment, LiteRtModel, LiteRtOptions, *mut LiteRtCompiledModel) -> c_int;
    destroy_compiled_model = "LiteRtDestroyCompiledModel": fn(LiteRtCompiledModel);
    get_compiled_model_input_tensor_layout = "LiteRtGetCompiledModelInputTensorLayout":
        fn(LiteRtCompiledModel, ParamIndex, ParamIndex, *mut LiteRtLayout) -> c_int;
    get_compiled_model_output_tensor_layouts = "LiteRtGetCompiledModelOutputTensorLayouts":
        fn(LiteRtCompiledModel, ParamIndex, usize, *mut LiteRtLayout, bool) -> c_int;
    get_compiled_model_input_buffer_requirements =
        "LiteRtGetCompiledModelInputBufferRequirements":
        fn(LiteRtCompiledModel, ParamIndex, ParamIndex, *mut LiteRtTensorBufferRequirements)
            -> c_int;
    get_compiled_model_output_buffer_requirements =
        "LiteRtGetCompiledModelOutputBufferRequirements":
        fn(LiteRtCompiledModel, ParamIndex, ParamIndex, *mut LiteRtTensorBufferRequirements)
            -> c_int;
    create_managed_tensor_buffer_from_requirements =
        "LiteRtCreateManagedTensorBufferFromRequirements":
        fn(
            LiteRtEnvironment,
            *const LiteRtRankedTensorType,
            LiteRtTensorBufferRequirements,
            *mut LiteRtTensorBuffer,
        ) -> c_int;
    destroy_tensor_buffer = "LiteRtDestroyTensorBuffer": fn(LiteRtTensorBuffer);
    get_tensor_buffer_packed_size = "LiteRtGetTensorBufferPackedSize":
        fn(LiteRtTensorBuffer, *mut usize) -> c_int;
    lock_tensor_buffer = "LiteRtLockTensorBuffer":
        fn(LiteRtTensorBuffer, *mut *mut c_void, c_int) -> c_int;
    unlock_tensor_buffer = "LiteRtUnlockTensorBuffer": fn(LiteRtTensorBuffer) -> c_int;
    run_compiled_model = "LiteRtRunCompiledModel":
        fn(
            LiteRtCompiledModel,
            ParamIndex,
            usize,
            *mut LiteRtTensorBuffer,
            usize,
            *mut LiteRtTensorBuffer,
        ) -> c_int;
}

/// Present only in the 2.x C API whose model constructors take the environment first (the
/// signature declared above): a library without it is refused at load instead of being
/// called with the wrong arguments.
const SENTINEL: &str = "LiteRtCreateModelFromFd";

fn check(call: &'static str, status: c_int) -> Result<(), TfliteError> {
    if status == STATUS_OK {
        Ok(())
    } else {
        Err(TfliteError::Call {
            call,
            status: LiteRtStatus(status),
        })
    }
}

/// The loaded library and the process's one LiteRT environment.
pub(crate) struct LiteRt {
    api: Api,
    env: LiteRtEnvironment,
    /// Serialises every call that touches the environment (model creation, compilation,
    /// buffer allocation, destruction); runs of compiled models do not take it.
    env_lock: Mutex<()>,
    path: PathBuf,
    // Last: unloaded after the environment is destroyed in `Drop`.
    _lib: Library,
}

// SAFETY: `Library` and the function pointers are thread-safe; the environment handle is not
// tied to the thread that created it (LiteRT objects are plain heap objects), and every call
// that uses it holds `env_lock`, so it is never used from two threads at once.
unsafe impl Send for LiteRt {}
// SAFETY: as for `Send`: shared access only reaches the environment under `env_lock`.
unsafe impl Sync for LiteRt {}

impl std::fmt::Debug for LiteRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiteRt")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LiteRt {
    /// Loads the library (a path, or a bare file name for the dynamic loader's search) and
    /// creates an environment with no options.
    pub(crate) fn open(path: &Path) -> Result<LiteRt, TfliteError> {
        // SAFETY: loading libLiteRt.so runs its static initialisers (C++ globals, op
        // registration), which have no preconditions on this process; it links only libc,
        // libm, libdl, libpthread, librt and libstdc++.
        let lib = unsafe { Library::new(path) }.map_err(|source| TfliteError::Load {
            path: path.to_path_buf(),
            source,
        })?;
        let api = Api::load(&lib, path)?;
        // SAFETY: only the symbol's presence is checked; the pointer is never called.
        let sentinel = unsafe { lib.get::<unsafe extern "C" fn()>(SENTINEL.as_bytes()) };
        if let Err(source) = sentinel {
            return Err(TfliteError::MissingSymbol {
                path: path.to_path_buf(),
                symbol: SENTINEL,
                source,
            });
        }
        let mut env: LiteRtEnvironment = ptr::null_mut();
        // SAFETY: zero options with a null option array is the documented empty case; `env`
        // is a valid out-pointer.
        check("LiteRtCreateEnvironment", unsafe {
            (api.create_environment)(0, ptr::null(), &mut env)
        })?;
        if env.is_null() {
            return Err(TfliteError::Null("LiteRtCreateEnvironment"));
        }
        Ok(LiteRt {
            api,
            env,
            env_lock: Mutex::new(()),
            path: path.to_path_buf(),
            _lib: lib,
        })
    }

    /// Where the library was loaded from (as given to the loader).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn lock_env(&self) -> MutexGuard<'_, ()> {
        self.env_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parses `bytes` (a TFLite flatbuffer) and compiles it for the CPU accelerator with
    /// `threads` XNNPACK threads (0: LiteRT's default).
    pub(crate) fn compile(
        &'static self,
        bytes: &[u8],
        threads: usize,
    ) -> Result<Compiled, TfliteError> {
        let mut c = Compiled {
            lt: self,
            model: ptr::null_mut(),
            compiled: ptr::null_mut(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            in_buffers: Vec::new(),
            out_buffers: Vec::new(),
            bytes: AlignedBytes::copy_of(bytes)?,
        };
        let built = {
            let _env = self.lock_env();
            self.build(&mut c, threads)
        };
        // On failure `c` is destroyed here, after the lock is released: `Drop` takes it.
        built.map(|()| c)
    }

    /// The body of [`LiteRt::compile`], run under the environment lock; fills `c`, which
    /// destroys whatever was created if this fails half-way.
    fn build(&self, c: &mut Compiled, threads: usize) -> Result<(), TfliteError> {
        let api = &self.api;
        // SAFETY: `c.bytes` is a live allocation of `len()` bytes that `Compiled` keeps (and
        // never moves: it is a heap block) until after the model is destroyed; `c.model` is a
        // valid out-pointer.
        check("LiteRtCreateModelFromBuffer", unsafe {
            (api.create_model_from_buffer)(
                self.env,
                c.bytes.as_ptr().cast(),
                c.bytes.len(),
                &mut c.model,
            )
        })?;
        if c.model.is_null() {
            return Err(TfliteError::Null("LiteRtCreateModelFromBuffer"));
        }

        let mut n_sigs: ParamIndex = 0;
        // SAFETY: `c.model` is a live model; `n_sigs` is a valid out-pointer.
        check("LiteRtGetNumModelSignatures", unsafe {
            (api.get_num_model_signatures)(c.model, &mut n_sigs)
        })?;
        if n_sigs == 0 {
            return Err(TfliteError::NoSignature);
        }
        let mut sig: LiteRtSignature = ptr::null_mut();
        // SAFETY: index 0 < `n_sigs`; `sig` is a valid out-pointer; the signature is owned by
        // the model, which outlives every use below.
        check("LiteRtGetModelSignature", unsafe {
            (api.get_model_signature)(c.model, 0, &mut sig)
        })?;
        if sig.is_null() {
            return Err(TfliteError::Null("LiteRtGetModelSignature"));
        }
        let mut sub: LiteRtSubgraph = ptr::null_mut();
        // SAFETY: `sig` is a live (non-null) signature of `c.model`; `sub` is a valid
        // out-pointer.
        check("LiteRtGetSignatureSubgraph", unsafe {
            (api.get_signature_subgraph)(sig, &mut sub)
        })?;
        if sub.is_null() {
            return Err(TfliteError::Null("LiteRtGetSignatureSubgraph"));
        }

        let declared_inputs = self.ports(sig, sub, Direction::Input)?;
        let declared_outputs = self.ports(sig, sub, Direction::Output)?;

        let options = Options::cpu(self, threads)?;
        // SAFETY: environment, model and options are live; `c.compiled` is a valid
        // out-pointer. The options are only read during the call (destroyed by `Options`).
        check("LiteRtCreateCompiledModel", unsafe {
            (api.create_compiled_model)(self.env, c.model, options.0, &mut c.compiled)
        })?;
        drop(options);
        if c.compiled.is_null() {
            return Err(TfliteError::Null("LiteRtCreateCompiledModel"));
        }
        // The shapes the compiled model allocated: a dynamic (-1) batch dimension in the
        // model's signature becomes the model's default (what the interpreter runs).
        c.inputs = self.resolve(c.compiled, declared_inputs, Direction::Input)?;
        c.outputs = self.resolve(c.compiled, declared_outputs, Direction::Output)?;

        c.in_buffers = self.buffers(c, Direction::Input)?;
        c.out_buffers = self.buffers(c, Direction::Output)?;
        // Buffers are indexed by signature position; check what each holds once here.
        for (ports, buffers) in [(&c.inputs, &c.in_buffers), (&c.outputs, &c.out_buffers)] {
            for port in ports {
                let held = buffers
                    .get(port.sig_index)
                    .map_or(0, |&(_, packed_size)| packed_size);
                if held < port.byte_size {
                    return Err(TfliteError::BufferTooSmall {
                        tensor: port.name.clone(),
                        needed: port.byte_size,
                        got: held,
                    });
                }
            }
        }
        Ok(())
    }

    /// The inputs or outputs of the main signature in subgraph (interpreter) order, each with
    /// its position in the signature, which is the order buffers are passed in.
    fn ports(
        &self,
        sig: LiteRtSignature,
        sub: LiteRtSubgraph,
        dir: Direction,
    ) -> Result<Vec<Declared>, TfliteError> {
        let api = &self.api;
        let (num_sig, sig_at, num_sub, sub_at) = match dir {
            Direction::Input => (
                api.get_num_signature_inputs,
                api.get_signature_input_tensor_by_index,
                api.get_num_subgraph_inputs,
                api.get_subgraph_input,
            ),
            Direction::Output => (
                api.get_num_signature_outputs,
                api.get_signature_output_tensor_by_index,
                api.get_num_subgraph_outputs,
                api.get_subgraph_output,
            ),
        };
        let (mut n_sig, mut n_sub): (ParamIndex, ParamIndex) = (0, 0);
        // SAFETY: `sig` and `sub` are live objects of a model the caller keeps alive; the
        // counts are valid out-pointers.
        check("LiteRtGetNumSignatureInputs/Outputs", unsafe {
            num_sig(sig, &mut n_sig)
        })?;
        // SAFETY: as above.
        check("LiteRtGetNumSubgraphInputs/Outputs", unsafe {
            num_sub(sub, &mut n_sub)
        })?;
        if n_sig != n_sub {
            return Err(TfliteError::SignatureMismatch {
                signature: n_sig,
                subgraph: n_sub,
            });
        }
        let mut sig_tensors = Vec::with_capacity(n_sig);
        for j in 0..n_sig {
            let mut t: LiteRtTensor = ptr::null_mut();
            // SAFETY: `j < n_sig`; `t` is a valid out-pointer; the tensor is owned by the
            // model.
            check("LiteRtGetSignatureInput/OutputTensorByIndex", unsafe {
                sig_at(sig, j, &mut t)
            })?;
            sig_tensors.push((t, self.tensor_index(t)?));
        }
        let mut ports = Vec::with_capacity(n_sub);
        for i in 0..n_sub {
            let mut t: LiteRtTensor = ptr::null_mut();
            // SAFETY: `i < n_sub`; `t` is a valid out-pointer.
            check("LiteRtGetSubgraphInput/Output", unsafe {
                sub_at(sub, i, &mut t)
            })?;
            let index = self.tensor_index(t)?;
            let sig_index = sig_tensors
                .iter()
                .position(|&(st, si)| st == t || si == index)
                .ok_or(TfliteError::SignatureMismatch {
                    signature: n_sig,
                    subgraph: n_sub,
                })?;
            if ports.iter().any(|p: &Declared| p.sig_index == sig_index) {
                // Two subgraph tensors behind one signature entry: not a permutation.
                return Err(TfliteError::SignatureMismatch {
                    signature: n_sig,
                    subgraph: n_sub,
                });
            }
            ports.push(self.declared(t, sig_index)?);
        }
        Ok(ports)
    }

    fn tensor_index(&self, t: LiteRtTensor) -> Result<u32, TfliteError> {
        if t.is_null() {
            return Err(TfliteError::Null("tensor lookup"));
        }
        let mut index = 0u32;
        // SAFETY: `t` is a non-null tensor of a live model; `index` is a valid out-pointer.
        check("LiteRtGetTensorIndex", unsafe {
            (self.api.get_tensor_index)(t, &mut index)
        })?;
        Ok(index)
    }

    fn declared(&self, t: LiteRtTensor, sig_index: usize) -> Result<Declared, TfliteError> {
        let mut name_ptr: *const c_char = ptr::null();
        // SAFETY: `t` is a live tensor (checked non-null by `tensor_index`); `name_ptr` is a
        // valid out-pointer.
        check("LiteRtGetTensorName", unsafe {
            (self.api.get_tensor_name)(t, &mut name_ptr)
        })?;
        let name = if name_ptr.is_null() {
            String::new()
        } else {
            // SAFETY: LiteRT returns a NUL-terminated string owned by the model, alive for
            // this call; it is copied at once.
            unsafe { CStr::from_ptr(name_ptr) }
                .to_string_lossy()
                .into_owned()
        };
        let mut ty = LiteRtRankedTensorType::zeroed();
        // SAFETY: `ty` is a valid, writable `LiteRtRankedTensorType` (72 bytes, the layout
        // asserted above).
        check("LiteRtGetRankedTensorType", unsafe {
            (self.api.get_ranked_tensor_type)(t, &mut ty)
        })?;
        Ok(Declared {
            name,
            ty,
            sig_index,
        })
    }

    /// The ports of `declared` with the layouts the compiled model allocated.
    fn resolve(
        &self,
        compiled: LiteRtCompiledModel,
        declared: Vec<Declared>,
        dir: Direction,
    ) -> Result<Vec<Port>, TfliteError> {
        let layouts = match dir {
            Direction::Input => {
                let mut layouts = vec![LiteRtLayout::zeroed(); declared.len()];
                for d in &declared {
                    let slot = layouts
                        .get_mut(d.sig_index)
                        .ok_or(TfliteError::Null("input layout"))?;
                    // SAFETY: `compiled` is live; `d.sig_index` is a signature input position;
                    // `slot` is a valid, writable `LiteRtLayout` (68 bytes, asserted above).
                    check("LiteRtGetCompiledModelInputTensorLayout", unsafe {
                        (self.api.get_compiled_model_input_tensor_layout)(
                            compiled,
                            0,
                            d.sig_index,
                            slot,
                        )
                    })?;
                }
                layouts
            }
            Direction::Output => {
                let mut layouts = vec![LiteRtLayout::zeroed(); declared.len()];
                // SAFETY: `compiled` is live; `layouts` holds exactly as many writable
                // `LiteRtLayout`s as the signature has outputs, the count passed; no
                // reallocation is asked for.
                check("LiteRtGetCompiledModelOutputTensorLayouts", unsafe {
                    (self.api.get_compiled_model_output_tensor_layouts)(
                        compiled,
                        0,
                        layouts.len(),
                        layouts.as_mut_ptr(),
                        false,
                    )
                })?;
                layouts
            }
        };
        declared
            .into_iter()
            .map(|d| {
                let mut ty = d.ty;
                ty.layout = *layouts
                    .get(d.sig_index)
                    .ok_or(TfliteError::Null("tensor layout"))?;
                Port::new(d.name, ty, d.sig_index)
            })
            .collect()
    }

    /// One managed host buffer per signature input or output, as the compiled model requires.
    fn buffers(
        &self,
        c: &Compiled,
        dir: Direction,
    ) -> Result<Vec<(LiteRtTensorBuffer, usize)>, TfliteError> {
        let ports = match dir {
            Direction::Input => &c.inputs,
            Direction::Output => &c.outputs,
        };
        let req_at = match dir {
            Direction::Input => self.api.get_compiled_model_input_buffer_requirements,
            Direction::Output => self.api.get_compiled_model_output_buffer_requirements,
        };
        let mut by_sig: Vec<&Port> = ports.iter().collect();
        by_sig.sort_by_key(|p| p.sig_index);
        let mut out = Vec::with_capacity(by_sig.len());
        let mut guard = BufferList(&self.api, Vec::new());
        for port in by_sig {
            let mut req: LiteRtTensorBufferRequirements = ptr::null_mut();
            // SAFETY: `c.compiled` is live; `port.sig_index` is a valid signature position;
            // the requirements stay owned by the compiled model.
            let status = unsafe { req_at(c.compiled, 0, port.sig_index, &mut req) };
            check(
                "LiteRtGetCompiledModelInput/OutputBufferRequirements",
                status,
            )?;
            let mut buf: LiteRtTensorBuffer = ptr::null_mut();
            // SAFETY: environment and requirements are live; `port.ty` is a valid tensor type
            // read from the model; `buf` is a valid out-pointer. Caller holds the env lock.
            check("LiteRtCreateManagedTensorBufferFromRequirements", unsafe {
                (self.api.create_managed_tensor_buffer_from_requirements)(
                    self.env, &port.ty, req, &mut buf,
                )
            })?;
            if buf.is_null() {
                return Err(TfliteError::Null(
                    "LiteRtCreateManagedTensorBufferFromRequirements",
                ));
            }
            guard.1.push(buf);
            let mut size = 0usize;
            // SAFETY: `buf` is the live buffer just created; `size` is a valid out-pointer.
            check("LiteRtGetTensorBufferPackedSize", unsafe {
                (self.api.get_tensor_buffer_packed_size)(buf, &mut size)
            })?;
            out.push((buf, size));
        }
        guard.1.clear(); // handed over to `Compiled`, which destroys them
        Ok(out)
    }
}

impl Drop for LiteRt {
    fn drop(&mut self) {
        // SAFETY: the environment was created by `open` and is destroyed once; every compiled
        // model borrows `&'static LiteRt`, so none outlives it.
        unsafe { (self.api.destroy_environment)(self.env) }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Input,
    Output,
}

/// Destroys the buffers it holds on an early return.
struct BufferList<'a>(&'a Api, Vec<LiteRtTensorBuffer>);

impl Drop for BufferList<'_> {
    fn drop(&mut self) {
        for &buf in &self.1 {
            // SAFETY: each buffer was created by `LiteRtCreateManagedTensorBufferFromRequirements`
            // and is destroyed only here (the list is cleared when ownership moves on).
            unsafe { (self.0.destroy_tensor_buffer)(buf) }
        }
    }
}

/// Compilation options: CPU accelerator, optional thread count.
struct Options<'a>(LiteRtOptions, &'a Api);

impl<'a> Options<'a> {
    fn cpu(lt: &'a LiteRt, threads: usize) -> Result<Options<'a>, TfliteError> {
        let api = &lt.api;
        let mut raw: LiteRtOptions = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer.
        check("LiteRtCreateOptions", unsafe {
            (api.create_options)(&mut raw)
        })?;
        if raw.is_null() {
            return Err(TfliteError::Null("LiteRtCreateOptions"));
        }
        let options = Options(raw, api);
        // SAFETY: `options.0` is live; the CPU bit is a valid accelerator set.
        check("LiteRtSetOptionsHardwareAccelerators", unsafe {
            (api.set_options_hardware_accelerators)(options.0, HW_ACCELERATOR_CPU)
        })?;
        if threads > 0 {
            let toml = CString::new(format!("num_threads = {threads}\n"))
                .map_err(|_| TfliteError::Null("CPU options"))?;
            let payload = toml.into_raw();
            let mut opaque: LiteRtOpaqueOptions = ptr::null_mut();
            // SAFETY: the identifier is a static C string; `payload` is a heap C string that
            // LiteRT owns from now on and releases with `free_toml`, the matching destructor;
            // `opaque` is a valid out-pointer.
            let status = unsafe {
                (api.create_opaque_options)(
                    CPU_OPTIONS_ID.as_ptr(),
                    payload.cast(),
                    Some(free_toml),
                    &mut opaque,
                )
            };
            // On failure the payload's owner is unclear: leak its few bytes rather than risk
            // a double free.
            check("LiteRtCreateOpaqueOptions", status)?;
            // SAFETY: both objects are live; on success `options` owns `opaque`.
            let status = unsafe { (api.add_opaque_options)(options.0, opaque) };
            if status != STATUS_OK {
                // SAFETY: not added, so still ours to destroy, once.
                unsafe { (api.destroy_opaque_options)(opaque) };
                check("LiteRtAddOpaqueOptions", status)?;
            }
        }
        Ok(options)
    }
}

impl Drop for Options<'_> {
    fn drop(&mut self) {
        // SAFETY: created by `LiteRtCreateOptions`, destroyed once, here.
        unsafe { (self.1.destroy_options)(self.0) }
    }
}

/// Destructor of the CPU options payload handed to LiteRT.
unsafe extern "C" fn free_toml(payload: *mut c_void) {
    if !payload.is_null() {
        // SAFETY: LiteRT calls this once with the pointer `Options::cpu` made with
        // `CString::into_raw`.
        drop(unsafe { CString::from_raw(payload.cast()) });
    }
}

/// A signature tensor as the model declares it (dimensions may be dynamic).
#[derive(Debug, Clone)]
struct Declared {
    name: String,
    ty: LiteRtRankedTensorType,
    sig_index: usize,
}

/// A model input or output with the shape the compiled model allocated.
#[derive(Debug, Clone)]
pub(crate) struct Port {
    /// Tensor name (may be empty).
    pub(crate) name: String,
    /// `LiteRtElementType` value (the same numbers as `TfLiteType`).
    pub(crate) element_type: i32,
    /// Static dimensions.
    pub(crate) dims: Vec<usize>,
    /// Packed size in bytes.
    pub(crate) byte_size: usize,
    /// Position in the signature (the order buffers are passed to `LiteRtRunCompiledModel`).
    sig_index: usize,
    ty: LiteRtRankedTensorType,
}

impl Port {
    fn new(
        name: String,
        ty: LiteRtRankedTensorType,
        sig_index: usize,
    ) -> Result<Port, TfliteError> {
        let rank = ty.rank();
        let raw_dims = ty
            .layout
            .dimensions
            .get(..rank)
            .ok_or(TfliteError::BadRank {
                tensor: name.clone(),
                rank,
            })?
            .to_vec();
        let mut dims = Vec::with_capacity(raw_dims.len());
        for &d in &raw_dims {
            dims.push(usize::try_from(d).map_err(|_| TfliteError::DynamicShape {
                tensor: name.clone(),
                dims: raw_dims.clone(),
            })?);
        }
        let elem = element_size(ty.element_type).ok_or(TfliteError::UnsupportedType {
            tensor: name.clone(),
            element_type: ty.element_type,
        })?;
        let byte_size = dims
            .iter()
            .try_fold(elem, |acc, &d| acc.checked_mul(d))
            .ok_or(TfliteError::DynamicShape {
                tensor: name.clone(),
                dims: raw_dims.clone(),
            })?;
        Ok(Port {
            name,
            element_type: ty.element_type,
            dims,
            byte_size,
            sig_index,
            ty,
        })
    }
}

/// Bytes per element of a `LiteRtElementType`, for the fixed-size types.
pub(crate) fn element_size(element_type: i32) -> Option<usize> {
    Some(match element_type {
        // bool, int8, uint8
        6 | 9 | 3 => 1,
        // int16, uint16, float16, bfloat16
        7 | 17 | 10 | 19 => 2,
        // int32, uint32, float32
        2 | 16 | 1 => 4,
        // int64, uint64, float64, complex64
        4 | 13 | 11 | 8 => 8,
        // complex128
        12 => 16,
        // none, string, resource, variant, int4, int2
        _ => return None,
    })
}

/// A compiled model with one reusable host buffer per input and output.
///
/// Runs need `&mut self` (the buffers are rewritten), so a shared model sits behind a mutex.
pub(crate) struct Compiled {
    lt: &'static LiteRt,
    model: LiteRtModel,
    compiled: LiteRtCompiledModel,
    /// Subgraph (interpreter) order.
    inputs: Vec<Port>,
    /// Subgraph (interpreter) order.
    outputs: Vec<Port>,
    /// Signature order, with each buffer's packed size.
    in_buffers: Vec<(LiteRtTensorBuffer, usize)>,
    /// Signature order, with each buffer's packed size.
    out_buffers: Vec<(LiteRtTensorBuffer, usize)>,
    /// The flatbuffer the model points into; freed after the model (field drop order).
    bytes: AlignedBytes,
}

// SAFETY: the LiteRT objects are heap objects not bound to a thread; `Compiled` is only used
// through `&mut self` (or destroyed) by one thread at a time, and its environment calls go
// through `LiteRt`, which is `Sync`.
unsafe impl Send for Compiled {}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("model_bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Inputs in the interpreter's order.
    pub(crate) fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    /// Outputs in the interpreter's order.
    pub(crate) fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    /// The library the model was compiled with.
    pub(crate) fn litert(&self) -> &'static LiteRt {
        self.lt
    }

    /// Runs the model. `inputs[i]` must hold exactly `inputs()[i].byte_size` bytes (checked);
    /// returns the bytes of every output, in `outputs()` order.
    pub(crate) fn run(&mut self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>, TfliteError> {
        let api = &self.lt.api;
        if inputs.len() != self.inputs.len() {
            return Err(TfliteError::InputCount {
                expected: self.inputs.len(),
                found: inputs.len(),
            });
        }
        for (index, (port, data)) in self.inputs.iter().zip(inputs).enumerate() {
            if data.len() != port.byte_size {
                return Err(TfliteError::InputSize {
                    index,
                    expected: port.byte_size,
                    found: data.len(),
                });
            }
            let &(buf, _) = self
                .in_buffers
                .get(port.sig_index)
                .ok_or(TfliteError::Null("input buffer"))?;
            let mut host: *mut c_void = ptr::null_mut();
            // SAFETY: `buf` is a live buffer owned by `self`; `host` is a valid out-pointer.
            check("LiteRtLockTensorBuffer", unsafe {
                (api.lock_tensor_buffer)(buf, &mut host, LOCK_MODE_WRITE)
            })?;
            if !host.is_null() {
                // SAFETY: a locked host buffer is its packed size in writable bytes at `host`,
                // and `data.len() == port.byte_size` <= that size (checked at compile); the regions
                // cannot overlap (one is LiteRT's allocation, the other a caller slice).
                unsafe {
                    ptr::copy_nonoverlapping(data.as_ptr(), host.cast::<u8>(), data.len());
                }
            }
            // SAFETY: unlocks the lock taken above.
            let unlocked = unsafe { (api.unlock_tensor_buffer)(buf) };
            if host.is_null() {
                return Err(TfliteError::Null("LiteRtLockTensorBuffer"));
            }
            check("LiteRtUnlockTensorBuffer", unlocked)?;
        }

        let mut ins: Vec<LiteRtTensorBuffer> = self.in_buffers.iter().map(|b| b.0).collect();
        let mut outs: Vec<LiteRtTensorBuffer> = self.out_buffers.iter().map(|b| b.0).collect();
        // SAFETY: the compiled model and every buffer are live and owned by `self` (borrowed
        // mutably, so no other run uses them); the arrays hold exactly the signature's input
        // and output counts, in signature order, and stay alive during the call.
        check("LiteRtRunCompiledModel", unsafe {
            (api.run_compiled_model)(
                self.compiled,
                0,
                ins.len(),
                ins.as_mut_ptr(),
                outs.len(),
                outs.as_mut_ptr(),
            )
        })?;

        let mut outputs = Vec::with_capacity(self.outputs.len());
        for port in &self.outputs {
            let &(buf, _) = self
                .out_buffers
                .get(port.sig_index)
                .ok_or(TfliteError::Null("output buffer"))?;
            let mut host: *mut c_void = ptr::null_mut();
            // SAFETY: as for the inputs.
            check("LiteRtLockTensorBuffer", unsafe {
                (api.lock_tensor_buffer)(buf, &mut host, LOCK_MODE_READ)
            })?;
            let mut out = Vec::new();
            if !host.is_null() {
                // SAFETY: a locked host buffer holds at least `port.byte_size` readable bytes
                // (checked against its packed size at compile); copied before unlocking.
                let src = unsafe { std::slice::from_raw_parts(host.cast::<u8>(), port.byte_size) };
                out.extend_from_slice(src);
            }
            // SAFETY: unlocks the lock taken above.
            let unlocked = unsafe { (api.unlock_tensor_buffer)(buf) };
            if host.is_null() {
                return Err(TfliteError::Null("LiteRtLockTensorBuffer"));
            }
            check("LiteRtUnlockTensorBuffer", unlocked)?;
            outputs.push(out);
        }
        Ok(outputs)
    }
}

impl Drop for Compiled {
    fn drop(&mut self) {
        let api = &self.lt.api;
        let _env = self.lt.lock_env();
        for &(buf, _) in self.in_buffers.iter().chain(&self.out_buffers) {
            // SAFETY: created by this `Compiled`, destroyed once, before the compiled model.
            unsafe { (api.destroy_tensor_buffer)(buf) }
        }
        if !self.compiled.is_null() {
            // SAFETY: created by `LiteRtCreateCompiledModel`, destroyed once, before its model.
            unsafe { (api.destroy_compiled_model)(self.compiled) }
        }
        if !self.model.is_null() {
            // SAFETY: created by `LiteRtCreateModelFromBuffer`, destroyed once; `self.bytes`
            // is freed only after this body returns.
            unsafe { (api.destroy_model)(self.model) }
        }
    }
}

/// A heap copy of the model bytes aligned to [`MODEL_ALIGN`].
struct AlignedBytes {
    ptr: ptr::NonNull<u8>,
    len: usize,
}

impl AlignedBytes {
    fn layout(len: usize) -> Result<std::alloc::Layout, TfliteError> {
        std::alloc::Layout::from_size_align(len.max(1), MODEL_ALIGN)
            .map_err(|_| TfliteError::TooLarge(len))
    }

    fn copy_of(bytes: &[u8]) -> Result<AlignedBytes, TfliteError> {
        let layout = AlignedBytes::layout(bytes.len())?;
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = ptr::NonNull::new(raw).ok_or(TfliteError::TooLarge(bytes.len()))?;
        // SAFETY: the new block holds at least `bytes.len()` bytes and cannot overlap `bytes`.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len()) };
        Ok(AlignedBytes {
            ptr,
            len: bytes.len(),
        })
    }

    fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for AlignedBytes {
    fn drop(&mut self) {
        if let Ok(layout) = AlignedBytes::layout(self.len) {
            // SAFETY: allocated in `copy_of` with this same layout, freed once.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_bitfield_reads_the_low_seven_bits() {
        let mut ty = LiteRtRankedTensorType::zeroed();
        ty.layout.rank_and_flags = 4 | 0x80; // rank 4, has_strides set
        assert_eq!(ty.rank(), 4);
    }

    #[test]
    fn element_sizes_follow_tflite_types() {
        assert_eq!(element_size(1), Some(4)); // float32
        assert_eq!(element_size(3), Some(1)); // uint8
        assert_eq!(element_size(4), Some(8)); // int64
        assert_eq!(element_size(6), Some(1)); // bool
        assert_eq!(element_size(5), None); // string
        assert_eq!(element_size(18), None); // int4
    }

    #[test]
    fn dynamic_and_overflowing_shapes_are_refused() {
        let ty = |dims: &[i32]| {
            let mut t = LiteRtRankedTensorType {
                element_type: 1,
                ..LiteRtRankedTensorType::zeroed()
            };
            t.layout.rank_and_flags = dims.len() as u32;
            t.layout.dimensions[..dims.len()].copy_from_slice(dims);
            t
        };
        assert!(Port::new("x".into(), ty(&[-1, 3]), 0).is_err());
        assert!(Port::new("x".into(), ty(&[i32::MAX, i32::MAX, i32::MAX]), 0).is_err());
        let mut bad_rank = ty(&[1]);
        bad_rank.layout.rank_and_flags = 9;
        assert!(Port::new("x".into(), bad_rank, 0).is_err());
        let p = Port::new("x".into(), ty(&[1, 128, 128, 3]), 2).unwrap();
        assert_eq!(p.byte_size, 4 * 128 * 128 * 3);
        assert_eq!(p.dims, vec![1, 128, 128, 3]);
    }

    #[test]
    fn aligned_copy_keeps_bytes() {
        let b = AlignedBytes::copy_of(b"abcTFL3xyz").unwrap();
        assert_eq!(b.as_ptr() as usize % MODEL_ALIGN, 0);
        assert_eq!(b.len(), 10);
        let empty = AlignedBytes::copy_of(&[]).unwrap();
        assert_eq!(empty.len(), 0);
    }
}
