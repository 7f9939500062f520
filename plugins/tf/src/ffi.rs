//! The TensorFlow C API (`tensorflow/c/c_api.h`), opened at run time, and safe owners of its
//! objects. The only module of the crate with `unsafe`.
//!
//! Names are the C names so one grep finds both sides. Only the calls the plugin makes are
//! bound; every one exists since TensorFlow 1.x and is exported by both `libtensorflow.so.2`
//! (the C library tarball) and `libtensorflow_cc.so.2` (the pip wheel).
//!
//! Ownership: [`Model`] owns a `TF_Graph` and the `TF_Session` over it; [`Tensor`] owns a
//! `TF_Tensor`; `TF_Status`, `TF_SessionOptions` and `TF_ImportGraphDefOptions` live for one
//! call. Operations ([`Output`]) borrow the model whose graph holds them.
#![allow(unsafe_code)]
#![allow(non_camel_case_types, non_snake_case)] // the C names

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

use libloading::Library;

use crate::error::{TfCode, TfError};

/// Opaque C types.
macro_rules! opaque {
    ($($name:ident),+) => {$(
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )+};
}
opaque!(
    TF_Status,
    TF_Graph,
    TF_Operation,
    TF_Session,
    TF_SessionOptions,
    TF_ImportGraphDefOptions,
    TF_Tensor
);

/// `TF_DataType` (a C enum: `int`).
pub type TF_DataType = c_int;
/// `TF_Code` (a C enum: `int`).
type TF_Code = c_int;

/// `struct TF_Buffer`.
#[repr(C)]
struct TF_Buffer {
    data: *const c_void,
    length: usize,
    data_deallocator: Option<unsafe extern "C" fn(*mut c_void, usize)>,
}

/// `struct TF_Output`.
#[repr(C)]
#[derive(Clone, Copy)]
struct TF_Output {
    oper: *mut TF_Operation,
    index: c_int,
}

/// The C API functions the plugin calls.
#[derive(Clone, Copy)]
struct Fns {
    TF_Version: unsafe extern "C" fn() -> *const c_char,
    TF_NewStatus: unsafe extern "C" fn() -> *mut TF_Status,
    TF_DeleteStatus: unsafe extern "C" fn(*mut TF_Status),
    TF_GetCode: unsafe extern "C" fn(*const TF_Status) -> TF_Code,
    TF_Message: unsafe extern "C" fn(*const TF_Status) -> *const c_char,
    TF_NewGraph: unsafe extern "C" fn() -> *mut TF_Graph,
    TF_DeleteGraph: unsafe extern "C" fn(*mut TF_Graph),
    TF_NewSessionOptions: unsafe extern "C" fn() -> *mut TF_SessionOptions,
    TF_DeleteSessionOptions: unsafe extern "C" fn(*mut TF_SessionOptions),
    TF_NewImportGraphDefOptions: unsafe extern "C" fn() -> *mut TF_ImportGraphDefOptions,
    TF_DeleteImportGraphDefOptions: unsafe extern "C" fn(*mut TF_ImportGraphDefOptions),
    TF_GraphImportGraphDef: unsafe extern "C" fn(
        *mut TF_Graph,
        *const TF_Buffer,
        *const TF_ImportGraphDefOptions,
        *mut TF_Status,
    ),
    TF_LoadSessionFromSavedModel: unsafe extern "C" fn(
        *const TF_SessionOptions,
        *const TF_Buffer,
        *const c_char,
        *const *const c_char,
        c_int,
        *mut TF_Graph,
        *mut TF_Buffer,
        *mut TF_Status,
    ) -> *mut TF_Session,
    TF_NewSession: unsafe extern "C" fn(
        *mut TF_Graph,
        *const TF_SessionOptions,
        *mut TF_Status,
    ) -> *mut TF_Session,
    TF_CloseSession: unsafe extern "C" fn(*mut TF_Session, *mut TF_Status),
    TF_DeleteSession: unsafe extern "C" fn(*mut TF_Session, *mut TF_Status),
    TF_GraphOperationByName:
        unsafe extern "C" fn(*mut TF_Graph, *const c_char) -> *mut TF_Operation,
    TF_OperationNumOutputs: unsafe extern "C" fn(*mut TF_Operation) -> c_int,
    TF_OperationOutputType: unsafe extern "C" fn(TF_Output) -> TF_DataType,
    TF_AllocateTensor:
        unsafe extern "C" fn(TF_DataType, *const i64, c_int, usize) -> *mut TF_Tensor,
    TF_DeleteTensor: unsafe extern "C" fn(*mut TF_Tensor),
    TF_TensorType: unsafe extern "C" fn(*const TF_Tensor) -> TF_DataType,
    TF_NumDims: unsafe extern "C" fn(*const TF_Tensor) -> c_int,
    TF_Dim: unsafe extern "C" fn(*const TF_Tensor, c_int) -> i64,
    TF_TensorByteSize: unsafe extern "C" fn(*const TF_Tensor) -> usize,
    TF_TensorData: unsafe extern "C" fn(*const TF_Tensor) -> *mut c_void,
    TF_SessionRun: unsafe extern "C" fn(
        *mut TF_Session,
        *const TF_Buffer,
        *const TF_Output,
        *const *mut TF_Tensor,
        c_int,
        *const TF_Output,
        *mut *mut TF_Tensor,
        c_int,
        *const *const TF_Operation,
        c_int,
        *mut TF_Buffer,
        *mut TF_Status,
    ),
}

/// An opened TensorFlow C library. Kept for the life of the process (TensorFlow cannot be
/// unloaded), so every object below borrows it as `&'static`.
pub struct Api {
    fns: Fns,
    path: PathBuf,
    version: String,
    _lib: Library,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Resolves one symbol of `lib` as the function pointer type the target field has.
macro_rules! sym {
    ($lib:expr, $path:expr, $name:ident) => {{
        // SAFETY: the symbol is the C API function of this name, whose C signature (from
        // c_api.h / tf_tensor.h / tf_status.h) is the field's type; the pointer is used only
        // while the library stays loaded (it never unloads: see `Api`).
        let symbol = unsafe { $lib.get(concat!(stringify!($name), "\0").as_bytes()) };
        *symbol.map_err(|source| TfError::MissingSymbol {
            path: $path.to_owned(),
            source,
        })?
    }};
}

impl Api {
    /// Opens `path` (a file path, or a bare soname for the dynamic loader's search).
    pub fn open(path: &Path) -> Result<Library, libloading::Error> {
        // SAFETY: opening a library runs its initialisers. TensorFlow's register kernels, ops
        // and file systems in process-global registries and are made to be dlopen'ed (Python
        // loads the same library the same way); nothing else in this process uses those
        // registries.
        unsafe { Library::new(path.as_os_str()) }
    }

    /// Resolves the C API in an opened library.
    pub fn bind(lib: Library, path: &Path) -> Result<Api, TfError> {
        let fns = Fns {
            TF_Version: sym!(lib, path, TF_Version),
            TF_NewStatus: sym!(lib, path, TF_NewStatus),
            TF_DeleteStatus: sym!(lib, path, TF_DeleteStatus),
            TF_GetCode: sym!(lib, path, TF_GetCode),
            TF_Message: sym!(lib, path, TF_Message),
            TF_NewGraph: sym!(lib, path, TF_NewGraph),
            TF_DeleteGraph: sym!(lib, path, TF_DeleteGraph),
            TF_NewSessionOptions: sym!(lib, path, TF_NewSessionOptions),
            TF_DeleteSessionOptions: sym!(lib, path, TF_DeleteSessionOptions),
            TF_NewImportGraphDefOptions: sym!(lib, path, TF_NewImportGraphDefOptions),
            TF_DeleteImportGraphDefOptions: sym!(lib, path, TF_DeleteImportGraphDefOptions),
            TF_GraphImportGraphDef: sym!(lib, path, TF_GraphImportGraphDef),
            TF_LoadSessionFromSavedModel: sym!(lib, path, TF_LoadSessionFromSavedModel),
            TF_NewSession: sym!(lib, path, TF_NewSession),
            TF_CloseSession: sym!(lib, path, TF_CloseSession),
            TF_DeleteSession: sym!(lib, path, TF_DeleteSession),
            TF_GraphOperationByName: sym!(lib, path, TF_GraphOperationByName),
            TF_OperationNumOutputs: sym!(lib, path, TF_OperationNumOutputs),
            TF_OperationOutputType: sym!(lib, path, TF_OperationOutputType),
            TF_AllocateTensor: sym!(lib, path, TF_AllocateTensor),
            TF_DeleteTensor: sym!(lib, path, TF_DeleteTensor),
            TF_TensorType: sym!(lib, path, TF_TensorType),
            TF_NumDims: sym!(lib, path, TF_NumDims),
            TF_Dim: sym!(lib, path, TF_Dim),
            TF_TensorByteSize: sym!(lib, path, TF_TensorByteSize),
            TF_TensorData: sym!(lib, path, TF_TensorData),
            TF_SessionRun: sym!(lib, path, TF_SessionRun),
        };
        // SAFETY: `TF_Version` takes nothing and returns a static NUL-terminated string.
        let version = unsafe { c_text((fns.TF_Version)()) };
        Ok(Api {
            fns,
            path: path.to_owned(),
            version,
            _lib: lib,
        })
    }

    /// The library's path as it was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `TF_Version()`, e.g. `2.15.1`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Copies a C string that may be null.
///
/// # Safety
///
/// `p` is null or points at a NUL-terminated string alive for the call.
unsafe fn c_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated (caller contract).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A `TF_Status` for one call.
struct Status {
    api: &'static Api,
    ptr: NonNull<TF_Status>,
}

impl Status {
    fn new(api: &'static Api) -> Result<Status, TfError> {
        // SAFETY: no arguments; returns a new status or null.
        let ptr = unsafe { (api.fns.TF_NewStatus)() };
        NonNull::new(ptr)
            .map(|ptr| Status { api, ptr })
            .ok_or(TfError::Null("TF_NewStatus"))
    }

    fn raw(&self) -> *mut TF_Status {
        self.ptr.as_ptr()
    }

    /// `Ok` when the last call recorded `TF_OK`, else TensorFlow's code and message.
    fn check(&self, context: &'static str) -> Result<(), TfError> {
        // SAFETY: `ptr` is a live status.
        let code = TfCode(unsafe { (self.api.fns.TF_GetCode)(self.raw()) });
        if code == TfCode::OK {
            return Ok(());
        }
        // SAFETY: `ptr` is a live status; the message lives as long as it and is copied now.
        let message = unsafe { c_text((self.api.fns.TF_Message)(self.raw())) };
        Err(TfError::Tf {
            context,
            code,
            message,
        })
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        // SAFETY: created by TF_NewStatus, deleted once.
        unsafe { (self.api.fns.TF_DeleteStatus)(self.raw()) }
    }
}

/// A loaded model: a graph and a session over it.
pub struct Model {
    api: &'static Api,
    session: NonNull<TF_Session>,
    graph: NonNull<TF_Graph>,
}

// SAFETY: the graph and session are owned by this value alone and released in `Drop`, which
// needs no particular thread.
unsafe impl Send for Model {}
// SAFETY: through `&Model` only thread-safe calls are made: `TF_SessionRun` (a session runs
// concurrent steps; the C API documents sessions as thread-safe), `TF_GraphOperationByName`
// (takes the graph's mutex), and `TF_OperationNumOutputs` / `TF_OperationOutputType` (read
// node data that never changes once the graph is built; the plugin never adds nodes after
// loading).
unsafe impl Sync for Model {}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// A new `TF_Graph`, deleted on drop unless a `Model` takes it.
struct GraphGuard {
    api: &'static Api,
    ptr: NonNull<TF_Graph>,
}

impl GraphGuard {
    fn new(api: &'static Api) -> Result<GraphGuard, TfError> {
        // SAFETY: no arguments; returns a new graph or null.
        let ptr = unsafe { (api.fns.TF_NewGraph)() };
        NonNull::new(ptr)
            .map(|ptr| GraphGuard { api, ptr })
            .ok_or(TfError::Null("TF_NewGraph"))
    }

    fn into_model(self, session: NonNull<TF_Session>) -> Model {
        let model = Model {
            api: self.api,
            session,
            graph: self.ptr,
        };
        std::mem::forget(self);
        model
    }
}

impl Drop for GraphGuard {
    fn drop(&mut self) {
        // SAFETY: created by TF_NewGraph, not owned by anything else (no session took it).
        unsafe { (self.api.fns.TF_DeleteGraph)(self.ptr.as_ptr()) }
    }
}

/// `TF_SessionOptions` with defaults, for one session creation.
struct SessionOptions {
    api: &'static Api,
    ptr: NonNull<TF_SessionOptions>,
}

impl SessionOptions {
    fn new(api: &'static Api) -> Result<SessionOptions, TfError> {
        // SAFETY: no arguments; returns new options or null.
        let ptr = unsafe { (api.fns.TF_NewSessionOptions)() };
        NonNull::new(ptr)
            .map(|ptr| SessionOptions { api, ptr })
            .ok_or(TfError::Null("TF_NewSessionOptions"))
    }
}

impl Drop for SessionOptions {
    fn drop(&mut self) {
        // SAFETY: created by TF_NewSessionOptions; sessions copy their options.
        unsafe { (self.api.fns.TF_DeleteSessionOptions)(self.ptr.as_ptr()) }
    }
}

impl Model {
    /// Loads a SavedModel directory (`TF_LoadSessionFromSavedModel`) with the meta graph of
    /// `tags`, restoring its variables.
    pub fn from_saved_model(
        api: &'static Api,
        dir: &Path,
        tags: &[&CStr],
    ) -> Result<Model, TfError> {
        let export_dir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| TfError::Io {
            context: format!("SavedModel path {}", dir.display()),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        let tag_ptrs: Vec<*const c_char> = tags.iter().map(|t| t.as_ptr()).collect();
        let tags_len = c_int::try_from(tag_ptrs.len()).map_err(|_| TfError::TooMany("tags"))?;
        let graph = GraphGuard::new(api)?;
        let opts = SessionOptions::new(api)?;
        let status = Status::new(api)?;
        // SAFETY: options, graph and status are live; `export_dir` and the `tags_len` tag
        // pointers are NUL-terminated strings alive for the call; run options and the
        // meta-graph out-buffer are optional (null).
        let session = unsafe {
            (api.fns.TF_LoadSessionFromSavedModel)(
                opts.ptr.as_ptr(),
                ptr::null(),
                export_dir.as_ptr(),
                tag_ptrs.as_ptr(),
                tags_len,
                graph.ptr.as_ptr(),
                ptr::null_mut(),
                status.raw(),
            )
        };
        status.check("TF_LoadSessionFromSavedModel")?;
        let session = NonNull::new(session).ok_or(TfError::Null("TF_LoadSessionFromSavedModel"))?;
        Ok(graph.into_model(session))
    }

    /// Imports a serialized `GraphDef` (a frozen graph: weights as constants) with its node
    /// names unchanged, and opens a session over it.
    pub fn from_graph_def(api: &'static Api, graph_def: &[u8]) -> Result<Model, TfError> {
        let graph = GraphGuard::new(api)?;
        let status = Status::new(api)?;
        // SAFETY: no arguments; returns new options or null.
        let opts = unsafe { (api.fns.TF_NewImportGraphDefOptions)() };
        let opts = NonNull::new(opts).ok_or(TfError::Null("TF_NewImportGraphDefOptions"))?;
        let buffer = TF_Buffer {
            data: graph_def.as_ptr().cast(),
            length: graph_def.len(),
            data_deallocator: None,
        };
        // SAFETY: graph, options and status are live; the buffer points at `graph_def.len()`
        // readable bytes that TensorFlow parses during the call and does not keep (no
        // deallocator: the bytes stay ours).
        unsafe {
            (api.fns.TF_GraphImportGraphDef)(
                graph.ptr.as_ptr(),
                &raw const buffer,
                opts.as_ptr(),
                status.raw(),
            );
        }
        // SAFETY: created above, deleted once; the import does not keep it.
        unsafe { (api.fns.TF_DeleteImportGraphDefOptions)(opts.as_ptr()) };
        status.check("TF_GraphImportGraphDef")?;
        let sess_opts = SessionOptions::new(api)?;
        // SAFETY: graph, options and status are live; the session keeps a reference to the
        // graph, which `Model` deletes only after the session.
        let session = unsafe {
            (api.fns.TF_NewSession)(graph.ptr.as_ptr(), sess_opts.ptr.as_ptr(), status.raw())
        };
        status.check("TF_NewSession")?;
        let session = NonNull::new(session).ok_or(TfError::Null("TF_NewSession"))?;
        Ok(graph.into_model(session))
    }

    /// The operation named `name`, if the graph has one.
    pub fn operation(
        &self,
        name: &str,
        role: &'static str,
    ) -> Result<Option<Operation<'_>>, TfError> {
        let c_name = CString::new(name).map_err(|_| TfError::NodeName {
            role,
            name: name.to_owned(),
        })?;
        // SAFETY: the graph is live; the name is NUL-terminated and alive for the call.
        let op =
            unsafe { (self.api.fns.TF_GraphOperationByName)(self.graph.as_ptr(), c_name.as_ptr()) };
        Ok(NonNull::new(op).map(|ptr| Operation { model: self, ptr }))
    }

    /// Runs the session: feeds `inputs`, fetches `outputs` (in order). `run_options` is a
    /// serialized `RunOptions` proto, passed through.
    pub fn run(
        &self,
        run_options: Option<&[u8]>,
        inputs: &[(Output<'_>, Tensor)],
        outputs: &[Output<'_>],
    ) -> Result<Vec<Tensor>, TfError> {
        let graph = self.graph.as_ptr().cast_const();
        let foreign = inputs
            .iter()
            .map(|(o, _)| o)
            .chain(outputs)
            .any(|o| o.graph != graph);
        if foreign {
            return Err(TfError::ForeignNode);
        }
        let ninputs = c_int::try_from(inputs.len()).map_err(|_| TfError::TooMany("input count"))?;
        let noutputs =
            c_int::try_from(outputs.len()).map_err(|_| TfError::TooMany("output count"))?;
        let in_ops: Vec<TF_Output> = inputs.iter().map(|(o, _)| o.raw).collect();
        let in_values: Vec<*mut TF_Tensor> = inputs.iter().map(|(_, t)| t.ptr.as_ptr()).collect();
        let out_ops: Vec<TF_Output> = outputs.iter().map(|o| o.raw).collect();
        let mut out_values: Vec<*mut TF_Tensor> = vec![ptr::null_mut(); outputs.len()];
        let options = run_options.filter(|o| !o.is_empty()).map(|o| TF_Buffer {
            data: o.as_ptr().cast(),
            length: o.len(),
            data_deallocator: None,
        });
        let options_ptr = options
            .as_ref()
            .map_or(ptr::null(), |b| b as *const TF_Buffer);
        let status = Status::new(self.api)?;
        // SAFETY: the session is live. `in_ops`/`in_values` hold `ninputs` entries and
        // `out_ops`/`out_values` `noutputs`; every `TF_Output` names an operation of this
        // model's graph (checked above) with an index checked against its output count
        // (`Operation::output` is the only constructor). Input tensors are live
        // and owned by the caller (TensorFlow does not take them). Run options, when given,
        // point at bytes alive for the call. No targets, no run metadata.
        unsafe {
            (self.api.fns.TF_SessionRun)(
                self.session.as_ptr(),
                options_ptr,
                in_ops.as_ptr(),
                in_values.as_ptr(),
                ninputs,
                out_ops.as_ptr(),
                out_values.as_mut_ptr(),
                noutputs,
                ptr::null(),
                0,
                ptr::null_mut(),
                status.raw(),
            );
        }
        // Take ownership of whatever TensorFlow returned before looking at the status, so
        // nothing leaks on an error.
        let taken: Vec<Option<Tensor>> = out_values
            .into_iter()
            .map(|p| NonNull::new(p).map(|ptr| Tensor { api: self.api, ptr }))
            .collect();
        status.check("TF_SessionRun")?;
        taken
            .into_iter()
            .map(|t| t.ok_or(TfError::Null("TF_SessionRun (an output)")))
            .collect()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let Ok(status) = Status::new(self.api) else {
            log::warn!("tf: no status to close a session with; leaking it");
            return;
        };
        // SAFETY: the session is live and used by no one else (`&mut self`); closed once.
        unsafe { (self.api.fns.TF_CloseSession)(self.session.as_ptr(), status.raw()) };
        if let Err(e) = status.check("TF_CloseSession") {
            log::warn!("tf: {e}");
        }
        // SAFETY: closed above; deleted once, never used after.
        unsafe { (self.api.fns.TF_DeleteSession)(self.session.as_ptr(), status.raw()) };
        if let Err(e) = status.check("TF_DeleteSession") {
            log::warn!("tf: {e}");
        }
        // SAFETY: created by TF_NewGraph and owned here; its session is gone.
        unsafe { (self.api.fns.TF_DeleteGraph)(self.graph.as_ptr()) };
    }
}

/// An operation of a model's graph.
#[derive(Clone, Copy)]
pub struct Operation<'m> {
    model: &'m Model,
    ptr: NonNull<TF_Operation>,
}

impl<'m> Operation<'m> {
    /// How many outputs the operation has.
    pub fn num_outputs(&self) -> i32 {
        // SAFETY: the operation belongs to the live graph `model` holds.
        unsafe { (self.model.api.fns.TF_OperationNumOutputs)(self.ptr.as_ptr()) }
    }

    /// Output `index`, if the operation has it.
    pub fn output(&self, index: i32) -> Option<Output<'m>> {
        if index < 0 || index >= self.num_outputs() {
            return None;
        }
        let raw = TF_Output {
            oper: self.ptr.as_ptr(),
            index,
        };
        // SAFETY: the operation is live and `index` is one of its outputs (checked above:
        // TensorFlow does not check it).
        let dtype = unsafe { (self.model.api.fns.TF_OperationOutputType)(raw) };
        Some(Output {
            raw,
            dtype,
            graph: self.model.graph.as_ptr().cast_const(),
            _model: PhantomData,
        })
    }
}

/// One output of an operation: what a run feeds or fetches.
#[derive(Clone, Copy)]
pub struct Output<'m> {
    raw: TF_Output,
    dtype: TF_DataType,
    /// The graph the operation belongs to (a run refuses outputs of another model).
    graph: *const TF_Graph,
    _model: PhantomData<&'m Model>,
}

impl Output<'_> {
    /// The element type the graph gives this output (reference types, `+100`, included).
    pub fn dtype(&self) -> TF_DataType {
        self.dtype
    }
}

/// An owned `TF_Tensor`.
pub struct Tensor {
    api: &'static Api,
    ptr: NonNull<TF_Tensor>,
}

// SAFETY: the tensor is owned by this value alone; TensorFlow keeps no reference to tensors
// it returned or was fed.
unsafe impl Send for Tensor {}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype())
            .field("dims", &self.dims())
            .field("size", &self.data().len())
            .finish()
    }
}

impl Tensor {
    /// A tensor of a fixed-size element type holding a copy of `data`. The caller has checked
    /// that `data` is exactly the size `dims` and `dtype` call for.
    pub fn from_bytes(
        api: &'static Api,
        dtype: TF_DataType,
        dims: &[i64],
        data: &[u8],
    ) -> Result<Tensor, TfError> {
        let num_dims = c_int::try_from(dims.len()).map_err(|_| TfError::TooMany("tensor rank"))?;
        // SAFETY: `dims` holds `num_dims` values, read during the call; TensorFlow allocates
        // `data.len()` bytes (or returns null when they do not fit the shape).
        let ptr =
            unsafe { (api.fns.TF_AllocateTensor)(dtype, dims.as_ptr(), num_dims, data.len()) };
        let tensor = NonNull::new(ptr)
            .map(|ptr| Tensor { api, ptr })
            .ok_or(TfError::Null("TF_AllocateTensor"))?;
        if !data.is_empty() {
            // SAFETY: the tensor is live and owned here; its buffer is `TF_TensorByteSize`
            // bytes, checked to equal `data.len()` before copying.
            unsafe {
                let size = (api.fns.TF_TensorByteSize)(tensor.ptr.as_ptr());
                let dst = (api.fns.TF_TensorData)(tensor.ptr.as_ptr());
                if size != data.len() || dst.is_null() {
                    return Err(TfError::Null("TF_TensorData"));
                }
                ptr::copy_nonoverlapping(data.as_ptr(), dst.cast::<u8>(), data.len());
            }
        }
        Ok(tensor)
    }

    /// The element type.
    pub fn dtype(&self) -> TF_DataType {
        // SAFETY: the tensor is live.
        unsafe { (self.api.fns.TF_TensorType)(self.ptr.as_ptr()) }
    }

    /// The dimensions.
    pub fn dims(&self) -> Vec<i64> {
        // SAFETY: the tensor is live.
        let n = unsafe { (self.api.fns.TF_NumDims)(self.ptr.as_ptr()) };
        (0..n.max(0))
            // SAFETY: the tensor is live and `i` is below its rank.
            .map(|i| unsafe { (self.api.fns.TF_Dim)(self.ptr.as_ptr(), i) })
            .collect()
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the tensor is live; its buffer holds `TF_TensorByteSize` bytes (null only
        // when empty) and lives as long as the tensor, which `&self` borrows.
        unsafe {
            let size = (self.api.fns.TF_TensorByteSize)(self.ptr.as_ptr());
            let data = (self.api.fns.TF_TensorData)(self.ptr.as_ptr());
            if size == 0 || data.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(data.cast::<u8>(), size)
        }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: owned here, deleted once.
        unsafe { (self.api.fns.TF_DeleteTensor)(self.ptr.as_ptr()) }
    }
}
