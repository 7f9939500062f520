//! Finding and opening the TensorFlow C library, once per process.
//!
//! Order (the first library that opens and has the C API wins):
//!
//! 1. `VACCEL_TF_LIB`, when set and not empty: that file only (`libtensorflow_cc.so.2` of the
//!    pip wheel, or `libtensorflow.so.2` of an official libtensorflow tarball). A value that
//!    does not work is reported, not skipped: nothing else is tried.
//! 2. `libtensorflow.so.2`, then `libtensorflow_cc.so.2`, through the dynamic loader's search
//!    (`LD_LIBRARY_PATH`, `ld.so.cache`, the default directories).
//! 3. The `tensorflow` Python package: `$VACCEL_PYTHON` (default `python3`) is asked, in one
//!    subprocess that uses `importlib.util.find_spec` and so does not import TensorFlow
//!    (tens of milliseconds), for the package directory; `libtensorflow_cc.so.2` (then
//!    `libtensorflow.so.2`) in it is opened. The wheel's `libtensorflow_framework.so.2` sits
//!    next to it and is found through the library's `$ORIGIN` run path.
//!
//! The outcome, success or failure, is kept for the life of the process: installing
//! TensorFlow later needs a restart.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::TfError;
use crate::ffi::Api;

/// The variable naming the library file.
pub const VACCEL_TF_LIB: &str = "VACCEL_TF_LIB";
/// The variable naming the Python interpreter asked for the `tensorflow` package.
pub const VACCEL_PYTHON: &str = "VACCEL_PYTHON";

/// Sonames tried through the dynamic loader, in order.
const SONAMES: [&str; 2] = ["libtensorflow.so.2", "libtensorflow_cc.so.2"];
/// Files tried in the Python package's directory, in order.
const PACKAGE_FILES: [&str; 2] = ["libtensorflow_cc.so.2", "libtensorflow.so.2"];
/// How long the Python subprocess may take.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(20);
/// Prints the `tensorflow` package's directories, one a line, without importing it.
const FIND_SPEC: &str = "import importlib.util as u\n\
s = u.find_spec('tensorflow')\n\
print('\\n'.join(s.submodule_search_locations or []) if s else '')\n";

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// The TensorFlow C API, opened on first use. The error explains every place tried.
pub(crate) fn api() -> Result<&'static Api, TfError> {
    API.get_or_init(discover)
        .as_ref()
        .map_err(|tried| TfError::LibraryNotFound {
            tried: tried.clone(),
        })
}

/// Whether the library has been found (opening it if this is the first use).
pub fn available() -> bool {
    api().is_ok()
}

fn discover() -> Result<Api, String> {
    let env_lib = std::env::var_os(VACCEL_TF_LIB).filter(|v| !v.is_empty());
    let python = PathBuf::from(vaccel_core::python::interpreter());
    let mut tried = Vec::new();
    let found = search(env_lib.as_deref().map(Path::new), &python, &mut tried, open);
    match found {
        Some(api) => {
            log::info!(
                "tf: using TensorFlow {} from {}",
                api.version(),
                api.path().display()
            );
            Ok(api)
        }
        None => {
            let tried = tried.join("; ");
            log::info!("tf: TensorFlow C library not found ({tried})");
            Err(tried)
        }
    }
}

/// Opens a library and binds the C API; the error is a line for the "tried" list.
fn open(path: &Path) -> Result<Api, String> {
    let lib = Api::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Api::bind(lib, path).map_err(|e| match e {
        TfError::MissingSymbol { source, .. } => format!("{}: {source}", path.display()),
        other => format!("{}: {other}", path.display()),
    })
}

/// The discovery order, over an `open` function (so that it can be tested without
/// TensorFlow). Records one line per failed attempt in `tried`.
fn search<T>(
    env_lib: Option<&Path>,
    python: &Path,
    tried: &mut Vec<String>,
    mut open: impl FnMut(&Path) -> Result<T, String>,
) -> Option<T> {
    if let Some(path) = env_lib {
        return match open(path) {
            Ok(api) => Some(api),
            Err(e) => {
                tried.push(format!("{VACCEL_TF_LIB}={e}"));
                None
            }
        };
    }
    tried.push(format!("{VACCEL_TF_LIB} unset"));
    for soname in SONAMES {
        match open(Path::new(soname)) {
            Ok(api) => return Some(api),
            Err(e) => tried.push(e),
        }
    }
    let dirs = match python_package_dirs(python) {
        Ok(dirs) if dirs.is_empty() => {
            tried.push(format!("{}: no `tensorflow` package", python.display()));
            return None;
        }
        Ok(dirs) => dirs,
        Err(e) => {
            tried.push(format!("{}: {e}", python.display()));
            return None;
        }
    };
    for dir in dirs {
        for file in PACKAGE_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                continue;
            }
            match open(&path) {
                Ok(api) => return Some(api),
                Err(e) => tried.push(e),
            }
        }
        tried.push(format!(
            "{}: no {} in it",
            dir.display(),
            PACKAGE_FILES.join(" or ")
        ));
    }
    None
}

/// The directories of the `tensorflow` package as `python` sees them (empty when it has
/// none).
fn python_package_dirs(python: &Path) -> Result<Vec<PathBuf>, String> {
    vaccel_core::python::run(python.as_os_str(), FIND_SPEC, PYTHON_TIMEOUT)
        .map(|out| parse_dirs(&out))
}

fn parse_dirs(out: &str) -> Vec<PathBuf> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lib_is_the_only_candidate_when_set() {
        let mut tried = Vec::new();
        let mut seen = Vec::new();
        let got: Option<()> = search(
            Some(Path::new("/nope/libtensorflow_cc.so.2")),
            Path::new("python3"),
            &mut tried,
            |p| {
                seen.push(p.to_owned());
                Err(format!("{}: cannot open", p.display()))
            },
        );
        assert!(got.is_none());
        assert_eq!(seen, [PathBuf::from("/nope/libtensorflow_cc.so.2")]);
        assert_eq!(tried.len(), 1);
        assert!(tried[0].starts_with("VACCEL_TF_LIB=/nope"), "{tried:?}");
    }

    #[test]
    fn sonames_then_python() {
        let mut tried = Vec::new();
        let mut seen = Vec::new();
        let got: Option<()> = search(
            None,
            Path::new("/definitely/not/a/python"),
            &mut tried,
            |p| {
                seen.push(p.to_owned());
                Err(format!("{}: not here", p.display()))
            },
        );
        assert!(got.is_none());
        assert_eq!(
            seen,
            [
                PathBuf::from("libtensorflow.so.2"),
                PathBuf::from("libtensorflow_cc.so.2")
            ]
        );
        let text = tried.join("; ");
        assert!(text.contains("VACCEL_TF_LIB unset"), "{text}");
        assert!(
            text.contains("/definitely/not/a/python: cannot run it"),
            "{text}"
        );
    }

    #[test]
    fn first_soname_that_opens_wins() {
        let mut tried = Vec::new();
        let got = search(None, Path::new("python3"), &mut tried, |p| {
            if p == Path::new("libtensorflow_cc.so.2") {
                Ok(p.to_owned())
            } else {
                Err("no".to_owned())
            }
        });
        assert_eq!(got, Some(PathBuf::from("libtensorflow_cc.so.2")));
    }

    #[test]
    fn python_answers_are_parsed() {
        assert_eq!(
            parse_dirs("/a/site-packages/tensorflow\n\n  /b/tensorflow  \n"),
            [
                PathBuf::from("/a/site-packages/tensorflow"),
                PathBuf::from("/b/tensorflow")
            ]
        );
        assert!(parse_dirs("\n").is_empty());
    }

    #[test]
    fn a_python_without_tensorflow_says_so() {
        // `true` ignores its arguments and prints nothing: a python without the package.
        // `false` fails: a broken python.
        let Ok(dirs) = python_package_dirs(Path::new("true")) else {
            return;
        };
        assert!(dirs.is_empty());
        assert!(python_package_dirs(Path::new("false")).is_err());
    }
}
