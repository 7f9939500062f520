//! Finding `libLiteRt.so`, once per process. The steps are documented in the crate docs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::TfliteError;
use crate::ffi::LiteRt;

/// Path of `libLiteRt.so`; when set (non-empty), the only candidate.
pub const ENV_LIB: &str = "VACCEL_LITERT_LIB";
/// Python interpreter asked for `ai_edge_litert`'s directory (default `python3`).
pub const ENV_PYTHON: &str = "VACCEL_PYTHON";
/// The library's file name in the wheel and for the loader's search.
pub const LIB_NAME: &str = "libLiteRt.so";

/// Longest the Python probe may take (a cold interpreter start on a loaded machine).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Prints the package directory without importing it (`find_spec` on a top-level package
/// only locates it), so the probe does not load LiteRT into the Python process.
const PROBE: &str = "import importlib.util as u, os\n\
s = u.find_spec('ai_edge_litert')\n\
print(os.path.dirname(s.origin) if s is not None and s.origin else '')";

/// The process's LiteRT, found and loaded at the first call; later calls return the same
/// library or the same error.
pub(crate) fn litert() -> Result<&'static LiteRt, &'static TfliteError> {
    static LITERT: OnceLock<Result<LiteRt, TfliteError>> = OnceLock::new();
    LITERT
        .get_or_init(|| {
            let found = discover();
            match &found {
                Ok(lt) => log::info!("tflite: loaded LiteRT from {}", lt.path().display()),
                Err(e) => log::info!("tflite: {}", crate::error::chain(e)),
            }
            found
        })
        .as_ref()
}

fn discover() -> Result<LiteRt, TfliteError> {
    if let Some(path) = std::env::var_os(ENV_LIB).filter(|v| !v.is_empty()) {
        // An explicit path is not second-guessed: its failure is the answer.
        return LiteRt::open(Path::new(&path));
    }
    let mut tried = vec![format!("{ENV_LIB} unset")];
    match LiteRt::open(Path::new(LIB_NAME)) {
        Ok(lt) => return Ok(lt),
        Err(e) => tried.push(format!("loader search: {}", crate::error::chain(&e))),
    }
    let python = python();
    match python_package_dir(&python) {
        Ok(dir) => {
            let path = dir.join(LIB_NAME);
            match LiteRt::open(&path) {
                Ok(lt) => return Ok(lt),
                Err(e) => tried.push(crate::error::chain(&e)),
            }
        }
        Err(why) => tried.push(format!("{}: {why}", python.to_string_lossy())),
    }
    Err(TfliteError::NotFound {
        tried: tried.join("; "),
    })
}

/// The interpreter to ask: `$VACCEL_PYTHON`, else `python3`.
pub fn python() -> OsString {
    vaccel_core::python::interpreter()
}

/// `ai_edge_litert`'s directory as `python` sees it: one short subprocess, killed after
/// [`PROBE_TIMEOUT`].
pub fn python_package_dir(python: &OsString) -> Result<PathBuf, String> {
    parse_probe(&vaccel_core::python::run(python, PROBE, PROBE_TIMEOUT)?)
}

fn parse_probe(out: &str) -> Result<PathBuf, String> {
    let dir = out.trim();
    if dir.is_empty() {
        return Err("no module ai_edge_litert".to_owned());
    }
    Ok(PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers() {
        assert_eq!(
            parse_probe("/x/site-packages/ai_edge_litert\n").unwrap(),
            PathBuf::from("/x/site-packages/ai_edge_litert")
        );
        assert!(parse_probe("\n").is_err());
    }

    #[test]
    fn missing_interpreter_is_an_error_not_a_panic() {
        let e = python_package_dir(&OsString::from("/nonexistent/python3")).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
    }
}
