//! Blobs: the files or byte buffers a resource is made of (§5.2).

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::types::BlobType;

/// One file or buffer of a resource.
///
/// `FILE` blobs point at a file the runtime does not own and read it on demand. `BUFFER`
/// blobs hold bytes in memory (shared, never copied by the runtime). `MAPPED` blobs are files
/// the runtime wrote (and deletes on release) whose bytes it also keeps.
#[derive(Debug)]
pub struct Blob {
    kind: BlobType,
    name: String,
    path: Option<PathBuf>,
    path_owned: bool,
    data: Option<Bytes>,
}

impl Blob {
    /// A blob for an existing regular file; its name is the file name.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Blob> {
        let path = path.into();
        let meta =
            fs::metadata(&path).map_err(|e| Error::io(format!("blob {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Blob {
            kind: BlobType::File,
            name,
            path: Some(path),
            path_owned: false,
            data: None,
        })
    }

    /// A `FILE` blob with an explicit name (e.g. a path relative to a resource directory).
    pub fn from_path_named(path: impl Into<PathBuf>, name: impl Into<String>) -> Result<Blob> {
        let mut blob = Blob::from_path(path)?;
        blob.name = name.into();
        Ok(blob)
    }

    /// An in-memory blob. The bytes are shared, not copied. Empty data or names are refused.
    pub fn from_buf(data: impl Into<Bytes>, name: impl Into<String>) -> Result<Blob> {
        let data = data.into();
        let name = name.into();
        if data.is_empty() {
            return Err(Error::invalid("blob data is empty"));
        }
        if name.is_empty() {
            return Err(Error::invalid("blob name is empty"));
        }
        Ok(Blob {
            kind: BlobType::Buffer,
            name,
            path: None,
            path_owned: false,
            data: Some(data),
        })
    }

    /// Writes `data` to `dir/filename` (created exclusively, mode 0600) and returns a `MAPPED`
    /// blob owning the file. `filename` may contain `/`-separated subdirectories (created as
    /// needed) but is first checked by [`sanitize_name`], so nothing lands outside `dir`. With
    /// `randomize`, or when the file exists, `_XXXXXX` is inserted before the extension.
    pub fn persist(data: Bytes, dir: &Path, filename: &str, randomize: bool) -> Result<Blob> {
        let rel = sanitize_name(filename)?;
        if !dir.is_dir() {
            return Err(Error::io(
                format!("persist into {}", dir.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let target = dir.join(&rel);
        let parent = target.parent().unwrap_or(dir).to_path_buf();
        fs::create_dir_all(&parent)
            .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_owned());
        let (path, mut file) = if randomize {
            create_random(&parent, &file_name)?
        } else {
            match open_exclusive(&target) {
                Ok(file) => (target, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    log::warn!("File {} exists", target.display());
                    log::warn!("Adding a random value to the filename");
                    create_random(&parent, &file_name)?
                }
                Err(e) => return Err(Error::io(format!("create {}", target.display()), e)),
            }
        };
        log::debug!("Persisting file {file_name} to {}", path.display());
        if let Err(e) = file.write_all(&data).and_then(|()| file.flush()) {
            let _ = fs::remove_file(&path);
            return Err(Error::io(format!("write {}", path.display()), e));
        }
        // The blob's name keeps the relative directory part and the final (maybe randomized)
        // file name, so a tree persists and ships back with its structure.
        let final_name = path
            .strip_prefix(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or(file_name);
        Ok(Blob {
            kind: BlobType::Mapped,
            name: final_name,
            path: Some(path),
            path_owned: true,
            data: Some(data),
        })
    }

    /// The blob type.
    pub fn kind(&self) -> BlobType {
        self.kind
    }

    /// The name: a file name, or a `/`-separated path relative to the resource's directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file backing the blob (`FILE` and `MAPPED` blobs).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the runtime deletes the file on release.
    pub fn owns_file(&self) -> bool {
        self.path_owned
    }

    /// The bytes in memory, if loaded.
    pub fn data(&self) -> Option<&Bytes> {
        self.data.as_ref()
    }

    /// The bytes: the in-memory ones, or the file read now (not cached: a model file is read
    /// only when something needs its bytes, e.g. to ship it to a remote runtime).
    pub fn read(&self) -> Result<Bytes> {
        if let Some(data) = &self.data {
            return Ok(data.clone());
        }
        let path = self.path.as_ref().ok_or_else(|| {
            Error::invalid(format!("blob {} has neither data nor path", self.name))
        })?;
        fs::read(path)
            .map(Bytes::from)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))
    }

    /// Size in bytes (reads file metadata for `FILE` blobs).
    pub fn size(&self) -> Result<u64> {
        match (&self.data, &self.path) {
            (Some(d), _) => Ok(d.len() as u64),
            (None, Some(p)) => fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| Error::io(format!("stat {}", p.display()), e)),
            (None, None) => Ok(0),
        }
    }

    /// Replaces the in-memory bytes (resource sync).
    pub fn set_data(&mut self, data: Bytes) {
        self.data = Some(data);
    }

    /// A `FILE` blob the runtime owns (a downloaded file): deleted on release.
    #[cfg(feature = "download")]
    pub(crate) fn owned_file(path: PathBuf, name: String) -> Blob {
        Blob {
            kind: BlobType::File,
            name,
            path: Some(path),
            path_owned: true,
            data: None,
        }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        if self.path_owned
            && let Some(path) = &self.path
        {
            log::debug!("Removing file {}", path.display());
            if let Err(e) = fs::remove_file(path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!("Could not remove {}: {e}", path.display());
            }
        }
    }
}

fn open_exclusive(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Creates `dir/<stem>_XXXXXX<ext>` exclusively.
fn create_random(dir: &Path, file_name: &str) -> Result<(PathBuf, fs::File)> {
    let (stem, ext) = match file_name.rfind('.') {
        Some(i) if i > 0 => file_name.split_at(i),
        _ => (file_name, ""),
    };
    let file = tempfile::Builder::new()
        .prefix(&format!("{stem}_"))
        .suffix(ext)
        .rand_bytes(6)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("create a file in {}", dir.display()), e))?;
    let (file, path) = file
        .keep()
        .map_err(|e| Error::io(format!("keep a file in {}", dir.display()), e.error))?;
    Ok((path, file))
}

/// Checks a blob name from an untrusted source (a buffer's file name, a name from the wire):
/// a relative path of normal components only. Absolute paths, `..`, `.`, empty components,
/// NUL bytes and backslashes are refused, so joining it under a directory stays inside it.
pub fn sanitize_name(name: &str) -> Result<PathBuf> {
    let bad = |why: &str| Error::invalid(format!("unsafe file name {name:?}: {why}"));
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 4096 {
        return Err(Error::NameTooLong(name.chars().take(64).collect()));
    }
    if name.contains('\0') || name.contains('\\') {
        return Err(bad("contains NUL or backslash"));
    }
    let mut out = PathBuf::new();
    for part in name.split('/') {
        let mut comps = Path::new(part).components();
        match (comps.next(), comps.next()) {
            (Some(Component::Normal(c)), None) if !part.is_empty() => out.push(c),
            _ => {
                return Err(bad(
                    "components must be plain names (no '/', '..', '.', or empty)",
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized() {
        assert_eq!(
            sanitize_name("model.pt").unwrap(),
            PathBuf::from("model.pt")
        );
        assert_eq!(
            sanitize_name("a/b/c.bin").unwrap(),
            PathBuf::from("a/b/c.bin")
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "x\0y",
            "a/",
        ] {
            assert!(sanitize_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn persist_creates_owned_files_and_randomizes_on_clash() {
        let dir = tempfile::tempdir().unwrap();
        let a = Blob::persist(Bytes::from_static(b"abc"), dir.path(), "lib.so", false).unwrap();
        assert_eq!(a.kind(), BlobType::Mapped);
        assert_eq!(a.name(), "lib.so");
        assert_eq!(fs::read(a.path().unwrap()).unwrap(), b"abc");
        let b = Blob::persist(Bytes::from_static(b"def"), dir.path(), "lib.so", false).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(
            b.name().starts_with("lib_") && b.name().ends_with(".so"),
            "{}",
            b.name()
        );
        let nested =
            Blob::persist(Bytes::from_static(b"x"), dir.path(), "sub/dir/f", false).unwrap();
        assert_eq!(nested.name(), "sub/dir/f");
        assert!(Blob::persist(Bytes::from_static(b"x"), dir.path(), "../escape", false).is_err());
        let paths: Vec<PathBuf> = [&a, &b, &nested]
            .iter()
            .map(|b| b.path().unwrap().to_owned())
            .collect();
        drop((a, b, nested));
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn file_blobs_read_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        fs::write(&p, b"hello").unwrap();
        let blob = Blob::from_path(&p).unwrap();
        assert_eq!(blob.name(), "f.txt");
        assert_eq!(blob.size().unwrap(), 5);
        assert_eq!(&blob.read().unwrap()[..], b"hello");
        drop(blob);
        assert!(p.exists(), "FILE blobs never delete the user's file");
        assert!(Blob::from_path(dir.path()).is_err());
        assert!(Blob::from_buf(Bytes::new(), "x").is_err());
        assert!(Blob::from_buf(Bytes::from_static(b"x"), "").is_err());
    }
}
