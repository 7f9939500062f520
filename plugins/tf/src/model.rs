//! Models: what a `MODEL` resource holds, loading it into TensorFlow, running it, and the
//! cache of loaded models per (session, resource).
//!
//! A resource is read as follows (first match):
//!
//! * a **directory** resource (created from a directory path, or shipped as a tree): a
//!   SavedModel directory, which must hold `saved_model.pb` or `saved_model.pbtxt`;
//! * a resource with a file named **`saved_model.pb`** (or `.pbtxt`): a SavedModel. When
//!   every other file of the resource lies under that file's directory, the directory is
//!   loaded in place; otherwise (buffers, files from different places) the files are laid out
//!   in a SavedModel tree under the session's directory (`tf-model.<resource id>/`), linked
//!   or written, loaded, and the tree removed: names with a `/` keep their path,
//!   `variables.*` go to `variables/`, `fingerprint.pb` to the root, anything else to
//!   `assets/`;
//! * a single file that is a serialized `SavedModel` proto whatever its name (it starts
//!   with field 1, a varint, which a `GraphDef` never does): the same, as `saved_model.pb`;
//! * otherwise the **first file** is a binary frozen `GraphDef` (variables folded into
//!   constants) and is imported with its node names unchanged.
//!
//! SavedModels are loaded with the tag `serve`. Nodes are addressed by operation name and
//! output index (`serving_default_input:0`, `StatefulPartitionedCall:1`).

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use vaccel_core::blob::sanitize_name;
use vaccel_core::{Blob, Id, PathType, Resource, Result, Session, TfDataType, TfNode, TfTensor};

use crate::error::{Describe, TfError};
use crate::ffi::{self, Api};

/// The meta-graph tag of SavedModels (`tf.saved_model.SERVING`).
pub const SERVE_TAG: &CStr = c"serve";

/// The file names of a SavedModel's graph.
const SAVED_MODEL_FILES: [&str; 2] = ["saved_model.pb", "saved_model.pbtxt"];

/// How a model was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A SavedModel directory (graph, variables, assets).
    SavedModel,
    /// A frozen `GraphDef` file.
    FrozenGraph,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::SavedModel => "SavedModel",
            Format::FrozenGraph => "frozen GraphDef",
        })
    }
}

/// Where a resource's model is.
#[derive(Debug)]
enum Source {
    /// A SavedModel directory to load in place.
    SavedModelDir(PathBuf),
    /// SavedModel files to lay out first: (path in the tree, file).
    SavedModelFiles(Vec<(PathBuf, Arc<Blob>)>),
    /// A frozen graph.
    GraphDef(Arc<Blob>),
}

/// The last path component of a blob name.
fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn bad(res: &Resource, reason: impl Into<String>) -> TfError {
    TfError::BadModel {
        resource: res.id(),
        reason: reason.into(),
    }
}

/// The first byte of a blob (`None`: empty).
fn first_byte(blob: &Blob) -> Result<Option<u8>> {
    if let Some(data) = blob.data() {
        return Ok(data.first().copied());
    }
    let Some(path) = blob.path() else {
        return Ok(None);
    };
    let mut byte = [0u8; 1];
    let mut file = fs::File::open(path).map_err(|e| TfError::Io {
        context: format!("open {}", path.display()),
        source: e,
    })?;
    let n = file.read(&mut byte).map_err(|e| TfError::Io {
        context: format!("read {}", path.display()),
        source: e,
    })?;
    Ok((n == 1).then_some(byte[0]))
}

/// Whether a serialized proto starting with `byte` is a `SavedModel` rather than a
/// `GraphDef`: a SavedModel opens with field 1 (`saved_model_schema_version`, a varint: tag
/// byte 0x08); a GraphDef's field 1 is its nodes (length-delimited: 0x0a), and none of its
/// fields is a varint numbered 1.
fn looks_like_saved_model(byte: Option<u8>) -> bool {
    byte == Some(0x08)
}

/// Where a file of a SavedModel resource goes in the SavedModel tree.
fn tree_path(name: &str) -> std::result::Result<PathBuf, String> {
    let rel = sanitize_name(name).map_err(|e| e.to_string())?;
    if rel.components().count() > 1 {
        return Ok(rel);
    }
    let base = base_name(name);
    Ok(
        if SAVED_MODEL_FILES.contains(&base) || base == "fingerprint.pb" {
            rel
        } else if base.starts_with("variables.") {
            Path::new("variables").join(rel)
        } else {
            Path::new("assets").join(rel)
        },
    )
}

/// The directory holding `graph`'s file when every file of the resource already lies where
/// a SavedModel tree wants it under that directory (so it can be loaded in place).
fn in_place_dir(blobs: &[Arc<Blob>], graph: usize) -> Option<PathBuf> {
    let graph_path = blobs.get(graph)?.path()?;
    let graph_name = graph_path.file_name()?.to_str()?;
    if !SAVED_MODEL_FILES.contains(&graph_name) {
        return None;
    }
    let root = graph_path.parent()?;
    blobs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != graph)
        .all(|(_, b)| {
            let rel = b.path().and_then(|p| p.strip_prefix(root).ok());
            rel.is_some_and(|rel| tree_path(b.name()).is_ok_and(|want| rel == want))
        })
        .then(|| root.to_path_buf())
}

fn locate(res: &Resource) -> Result<Source> {
    if res.path_type() == PathType::LocalDir {
        let dir = res.directory()?;
        if SAVED_MODEL_FILES.iter().any(|f| dir.join(f).is_file()) {
            return Ok(Source::SavedModelDir(dir));
        }
        return Err(bad(
            res,
            format!(
                "directory {} holds no saved_model.pb or saved_model.pbtxt",
                dir.display()
            ),
        )
        .into());
    }
    let blobs = res.blobs();
    let Some(first) = blobs.first() else {
        return Err(bad(res, "the resource has no file").into());
    };
    let graph = blobs
        .iter()
        .position(|b| SAVED_MODEL_FILES.contains(&base_name(b.name())));
    let graph = match graph {
        Some(i) => i,
        None if blobs.len() == 1 && looks_like_saved_model(first_byte(first)?) => 0,
        None => return Ok(Source::GraphDef(Arc::clone(first))),
    };
    if let Some(dir) = in_place_dir(&blobs, graph) {
        return Ok(Source::SavedModelDir(dir));
    }
    let mut files: Vec<(PathBuf, Arc<Blob>)> = Vec::with_capacity(blobs.len());
    for (i, blob) in blobs.iter().enumerate() {
        let place = if i == graph {
            let pbtxt = blob.name().ends_with(".pbtxt");
            PathBuf::from(if pbtxt {
                "saved_model.pbtxt"
            } else {
                "saved_model.pb"
            })
        } else {
            tree_path(blob.name()).map_err(|e| bad(res, e))?
        };
        if files.iter().any(|(p, _)| *p == place) {
            return Err(bad(
                res,
                format!("two files go to {} of the SavedModel", place.display()),
            )
            .into());
        }
        files.push((place, Arc::clone(blob)));
    }
    Ok(Source::SavedModelFiles(files))
}

/// A SavedModel tree laid out for loading; removed on drop.
#[derive(Debug)]
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            log::warn!("tf: could not remove {}: {e}", self.0.display());
        }
    }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> TfError {
    move |source| TfError::Io { context, source }
}

/// Lays `files` out under `dir`: files on disk are linked (no copy), buffers written.
fn stage(dir: PathBuf, files: &[(PathBuf, Arc<Blob>)]) -> Result<Staged> {
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
    }
    fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let staged = Staged(dir);
    for (rel, blob) in files {
        let dest = staged.0.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        match blob.path() {
            Some(src) => {
                let src =
                    fs::canonicalize(src).map_err(io(format!("resolve {}", src.display())))?;
                std::os::unix::fs::symlink(&src, &dest)
                    .map_err(io(format!("link {}", dest.display())))?;
            }
            None => {
                fs::write(&dest, blob.read()?).map_err(io(format!("write {}", dest.display())))?;
            }
        }
    }
    Ok(staged)
}

/// Bytes per element of the fixed-size TensorFlow types (`None`: strings, resources,
/// variants, which the plugin does not pass).
pub fn element_size(dtype: TfDataType) -> Option<usize> {
    use TfDataType as T;
    Some(match dtype {
        T::Uint8 | T::Int8 | T::Bool | T::Qint8 | T::Quint8 => 1,
        T::Int16 | T::Uint16 | T::Half | T::Bfloat16 | T::Qint16 | T::Quint16 => 2,
        T::Float | T::Int32 | T::Uint32 | T::Qint32 => 4,
        T::Double | T::Int64 | T::Uint64 | T::Complex64 => 8,
        T::Complex128 => 16,
        T::String | T::Resource | T::Variant => return None,
    })
}

/// A type's vAccel name, or its raw number when vAccel has none.
fn type_name(raw: i32) -> String {
    u32::try_from(raw)
        .ok()
        .and_then(TfDataType::from_value)
        .map_or_else(|| format!("type {raw}"), |t| t.base_name().to_owned())
}

/// Checks an input tensor: supported type, bytes matching dims and type, bools 0 or 1.
pub fn check_input(index: usize, t: &TfTensor<'_>) -> std::result::Result<(), TfError> {
    let size = element_size(t.data_type).ok_or_else(|| TfError::UnsupportedType {
        what: format!("input {index}"),
        dtype: t.data_type.base_name().to_owned(),
    })?;
    let expected = t.element_count().and_then(|n| n.checked_mul(size as u64));
    if expected != u64::try_from(t.data.len()).ok() {
        return Err(TfError::SizeMismatch {
            index,
            dtype: t.data_type.base_name().to_owned(),
            dims: t.dims.clone(),
            expected: Describe(expected),
            found: t.data.len(),
        });
    }
    if t.data_type == TfDataType::Bool
        && let Some((offset, &value)) = t.data.iter().enumerate().find(|(_, b)| **b > 1)
    {
        return Err(TfError::BadBool {
            index,
            offset,
            value,
        });
    }
    Ok(())
}

/// Converts a tensor TensorFlow returned. A scalar (rank 0) comes back with dims `[1]`: vAccel
/// tensors have at least one dimension.
fn to_vaccel(index: usize, t: &ffi::Tensor) -> Result<TfTensor<'static>> {
    let raw = t.dtype();
    let unsupported = || TfError::UnsupportedType {
        what: format!("output {index}"),
        dtype: type_name(raw),
    };
    let dtype = u32::try_from(raw)
        .ok()
        .and_then(TfDataType::from_value)
        .ok_or_else(unsupported)?;
    let size = element_size(dtype).ok_or_else(unsupported)?;
    let mut dims = t.dims();
    if dims.is_empty() {
        dims.push(1);
    }
    let data = t.data();
    let expected = dims.iter().try_fold(size as u64, |acc, &d| {
        acc.checked_mul(u64::try_from(d).ok()?)
    });
    if expected != u64::try_from(data.len()).ok() {
        return Err(TfError::BadOutput {
            index,
            expected: expected.unwrap_or(u64::MAX),
            found: data.len(),
        }
        .into());
    }
    TfTensor::new(dims, dtype, data.to_vec())
}

/// A loaded model.
#[derive(Debug)]
pub struct Model {
    tf: ffi::Model,
    api: &'static Api,
    /// How it was stored.
    pub format: Format,
}

impl Model {
    /// Loads the model of `res` (see the module docs) for `sess`.
    pub(crate) fn load(api: &'static Api, sess: &Session, res: &Resource) -> Result<Model> {
        let (tf, format) = match locate(res)? {
            Source::SavedModelDir(dir) => (
                ffi::Model::from_saved_model(api, &dir, &[SERVE_TAG])?,
                Format::SavedModel,
            ),
            Source::SavedModelFiles(files) => {
                let dir = sess.rundir().join(format!("tf-model.{}", res.id()));
                let staged = stage(dir, &files)?;
                // TensorFlow restores variables and reads assets while loading: the tree is
                // not needed afterwards.
                let tf = ffi::Model::from_saved_model(api, &staged.0, &[SERVE_TAG]);
                drop(staged);
                (tf?, Format::SavedModel)
            }
            Source::GraphDef(blob) => {
                let bytes = blob.read()?;
                (
                    ffi::Model::from_graph_def(api, &bytes)?,
                    Format::FrozenGraph,
                )
            }
        };
        Ok(Model { tf, api, format })
    }

    /// The graph output a node names.
    fn output(
        &self,
        node: &TfNode,
        role: &'static str,
    ) -> std::result::Result<ffi::Output<'_>, TfError> {
        let op = self
            .tf
            .operation(&node.name, role)?
            .ok_or_else(|| TfError::NodeNotFound {
                role,
                name: node.name.clone(),
            })?;
        op.output(node.id).ok_or_else(|| TfError::NodeIndex {
            role,
            name: node.name.clone(),
            id: node.id,
            count: op.num_outputs(),
        })
    }

    /// Feeds `in_tensors` to `in_nodes` and returns the values of `out_nodes`, in order.
    pub fn run(
        &self,
        run_options: Option<&[u8]>,
        in_nodes: &[TfNode],
        in_tensors: &[TfTensor<'_>],
        out_nodes: &[TfNode],
    ) -> Result<Vec<TfTensor<'static>>> {
        for (i, t) in in_tensors.iter().enumerate() {
            check_input(i, t)?;
        }
        let mut inputs = Vec::with_capacity(in_nodes.len());
        for (i, (node, t)) in in_nodes.iter().zip(in_tensors).enumerate() {
            let out = self.output(node, "input")?;
            // Reference types (`DT_FLOAT_REF`...) are the base type + 100.
            let expected = if out.dtype() > 100 {
                out.dtype() - 100
            } else {
                out.dtype()
            };
            let found = i32::try_from(t.data_type.value()).unwrap_or(i32::MAX);
            if expected != found {
                return Err(TfError::TypeMismatch {
                    index: i,
                    node: format!("{}:{}", node.name, node.id),
                    expected: type_name(expected),
                    found: type_name(found),
                }
                .into());
            }
            let tensor = ffi::Tensor::from_bytes(self.api, found, &t.dims, &t.data)?;
            inputs.push((out, tensor));
        }
        let outputs = out_nodes
            .iter()
            .map(|n| self.output(n, "output"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let values = self.tf.run(run_options, &inputs, &outputs)?;
        values
            .iter()
            .enumerate()
            .map(|(i, t)| to_vaccel(i, t))
            .collect()
    }
}

type Slot = Arc<Mutex<Option<Arc<Model>>>>;

/// Loaded models per (session id, resource id). Dropped by `tf_model_unload` and by the
/// plugin's `resource_unregister` / `session_release` hooks (ids are reused, so nothing may
/// outlive them).
#[derive(Debug, Default)]
pub(crate) struct ModelCache {
    slots: Mutex<HashMap<(Id, Id), Slot>>,
    loads: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ModelCache {
    /// How many models were loaded into TensorFlow so far.
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    /// How many models are loaded now.
    pub fn open(&self) -> usize {
        let slots: Vec<Slot> = lock(&self.slots).values().cloned().collect();
        slots.iter().filter(|s| lock(s).is_some()).count()
    }

    /// The model of `(sess, res)`, loaded by `load` unless it is already; `true` when it was
    /// loaded now. A second caller for the same pair waits for the first one's load.
    pub fn load(
        &self,
        sess: Id,
        res: Id,
        load: impl FnOnce() -> Result<Model>,
    ) -> Result<(Arc<Model>, bool)> {
        let slot = Arc::clone(lock(&self.slots).entry((sess, res)).or_default());
        let mut slot = lock(&slot);
        if let Some(model) = &*slot {
            return Ok((Arc::clone(model), false));
        }
        let model = Arc::new(load()?);
        self.loads.fetch_add(1, Ordering::Relaxed);
        *slot = Some(Arc::clone(&model));
        Ok((model, true))
    }

    /// The loaded model of `(sess, res)`, if any (waits for a load in progress).
    pub fn get(&self, sess: Id, res: Id) -> Option<Arc<Model>> {
        let slot = lock(&self.slots).get(&(sess, res)).cloned()?;
        lock(&slot).clone()
    }

    /// Removes and returns the model of `(sess, res)`; it is released when the last run
    /// using it returns.
    pub fn remove(&self, sess: Id, res: Id) -> Option<Arc<Model>> {
        let slot = lock(&self.slots).remove(&(sess, res))?;
        lock(&slot).take()
    }

    /// Drops every model of a session.
    pub fn forget_session(&self, sess: Id) {
        let removed: Vec<Slot> = {
            let mut slots = lock(&self.slots);
            let keys: Vec<(Id, Id)> = slots.keys().filter(|(s, _)| *s == sess).copied().collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        // Released outside the map's lock: closing a TensorFlow session can take a while.
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn element_sizes() {
        assert_eq!(element_size(TfDataType::Float), Some(4));
        assert_eq!(element_size(TfDataType::Bool), Some(1));
        assert_eq!(element_size(TfDataType::Int64), Some(8));
        assert_eq!(element_size(TfDataType::Complex128), Some(16));
        assert_eq!(element_size(TfDataType::String), None);
        // Every vAccel TF type is classified.
        for t in TfDataType::ALL {
            let _ = element_size(*t);
        }
    }

    fn tensor(dims: Vec<i64>, dtype: TfDataType, data: Vec<u8>) -> TfTensor<'static> {
        TfTensor {
            dims,
            data_type: dtype,
            data: Cow::Owned(data),
        }
    }

    #[test]
    fn input_sizes_are_checked() {
        assert!(check_input(0, &tensor(vec![2, 3], TfDataType::Float, vec![0; 24])).is_ok());
        let e = check_input(1, &tensor(vec![2, 3], TfDataType::Float, vec![0; 23])).unwrap_err();
        assert!(
            matches!(
                e,
                TfError::SizeMismatch {
                    index: 1,
                    found: 23,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("needs 24 bytes, got 23"), "{e}");
        let e =
            check_input(0, &tensor(vec![i64::MAX, 4], TfDataType::Int32, vec![0; 4])).unwrap_err();
        assert!(e.to_string().contains("more than 2^64"), "{e}");
        let e = check_input(0, &tensor(vec![1], TfDataType::String, vec![0; 24])).unwrap_err();
        assert!(matches!(e, TfError::UnsupportedType { .. }), "{e}");
        assert!(check_input(0, &tensor(vec![0], TfDataType::Float, vec![])).is_ok());
    }

    #[test]
    fn bools_must_be_zero_or_one() {
        assert!(check_input(0, &tensor(vec![3], TfDataType::Bool, vec![0, 1, 0])).is_ok());
        let e = check_input(0, &tensor(vec![3], TfDataType::Bool, vec![0, 2, 1])).unwrap_err();
        assert!(
            matches!(
                e,
                TfError::BadBool {
                    offset: 1,
                    value: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn saved_model_files_find_their_place() {
        let p = |n| tree_path(n).unwrap();
        assert_eq!(p("saved_model.pb"), PathBuf::from("saved_model.pb"));
        assert_eq!(p("fingerprint.pb"), PathBuf::from("fingerprint.pb"));
        assert_eq!(
            p("variables.index"),
            PathBuf::from("variables/variables.index")
        );
        assert_eq!(
            p("variables.data-00000-of-00001"),
            PathBuf::from("variables/variables.data-00000-of-00001")
        );
        assert_eq!(p("vocab.txt"), PathBuf::from("assets/vocab.txt"));
        assert_eq!(
            p("variables/variables.index"),
            PathBuf::from("variables/variables.index")
        );
        assert!(tree_path("../etc/passwd").is_err());
        assert!(tree_path("/abs").is_err());
    }

    #[test]
    fn saved_model_protos_are_told_from_graph_defs() {
        assert!(looks_like_saved_model(Some(0x08)));
        assert!(!looks_like_saved_model(Some(0x0a)));
        assert!(!looks_like_saved_model(None));
    }

    #[test]
    fn in_place_only_when_everything_is_under_the_graph_dir() {
        let dir = tempfile::tempdir().unwrap();
        let vars = dir.path().join("variables");
        fs::create_dir(&vars).unwrap();
        for f in ["saved_model.pb", "variables/variables.index"] {
            fs::write(dir.path().join(f), b"x").unwrap();
        }
        let graph = Arc::new(Blob::from_path(dir.path().join("saved_model.pb")).unwrap());
        let index = Arc::new(Blob::from_path(vars.join("variables.index")).unwrap());
        assert_eq!(
            in_place_dir(&[Arc::clone(&graph), Arc::clone(&index)], 0),
            Some(dir.path().to_path_buf())
        );
        let buffer = Arc::new(Blob::from_buf(&b"x"[..], "variables.data-00000-of-00001").unwrap());
        assert_eq!(
            in_place_dir(&[Arc::clone(&graph), Arc::clone(&index), buffer], 0),
            None
        );
        // A file in the wrong place of the tree (variables at the root) needs a layout.
        fs::write(dir.path().join("variables.data-00000-of-00001"), b"x").unwrap();
        let misplaced =
            Arc::new(Blob::from_path(dir.path().join("variables.data-00000-of-00001")).unwrap());
        assert_eq!(in_place_dir(&[Arc::clone(&graph), misplaced], 0), None);
        // A SavedModel graph under another name cannot be loaded where it is.
        fs::write(dir.path().join("model.pb"), b"\x08\x01").unwrap();
        let renamed = Arc::new(Blob::from_path(dir.path().join("model.pb")).unwrap());
        assert_eq!(in_place_dir(&[renamed], 0), None);
    }

    #[test]
    fn staging_links_files_and_writes_buffers() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("g.pb"), b"graph").unwrap();
        let run = tempfile::tempdir().unwrap();
        let files = vec![
            (
                PathBuf::from("saved_model.pb"),
                Arc::new(Blob::from_path(src.path().join("g.pb")).unwrap()),
            ),
            (
                PathBuf::from("variables/variables.index"),
                Arc::new(Blob::from_buf(&b"index"[..], "variables.index").unwrap()),
            ),
        ];
        let dir = run.path().join("tf-model.1");
        let staged = stage(dir.clone(), &files).unwrap();
        assert_eq!(fs::read(dir.join("saved_model.pb")).unwrap(), b"graph");
        assert!(
            fs::symlink_metadata(dir.join("saved_model.pb"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            fs::read(dir.join("variables/variables.index")).unwrap(),
            b"index"
        );
        drop(staged);
        assert!(!dir.exists());
        assert!(src.path().join("g.pb").exists(), "the user's file stays");
    }
}
