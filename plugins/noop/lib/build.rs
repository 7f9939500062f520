//! The build script of every vAccel library: `libvaccel.so` (package `vaccel-capi-lib`) and the
//! bundled plugin libraries (`plugins/*/lib`, whose `package.build` points here). It gives each
//! upstream's SONAME and file names in the profile directory:
//!
//! * `libvaccel.so` gets the SONAME `libvaccel.so.0` and the link
//!   `target/<profile>/libvaccel.so.0 -> libvaccel.so`;
//! * a plugin library, cargo's `libvaccel_<name>.so`, gets the SONAME `libvaccel-<name>.so.0`
//!   and the links `libvaccel-<name>.so` and `libvaccel-<name>.so.0` beside it. Cargo cannot put
//!   `-` in a library's file name, and upstream's users (and
//!   `VACCEL_PLUGINS=/path/libvaccel-noop.so`) expect it there after `cargo build`.
//!
//! Programs built against upstream ask the dynamic loader for `libvaccel.so.0` (the SONAME
//! their link recorded), and so do programs linked with `-lvaccel` against ours: the link lets
//! them run from the profile directory (`scripts/install.sh` installs the versioned file and
//! both links). `libvaccel.so` also exports the C functions of `vaccel-capi`'s C object
//! (`slog_print`), which rustc's export list of a cdylib (Rust items only) would hide.
//!
//! The links are relative, so they survive moving the target directory, and they are made
//! before the library is linked: they dangle until then, which `VACCEL_PLUGINS` treats like a
//! missing file (the bundled twin). Nothing here fails the build: an unrecognised layout or an
//! error is a cargo warning.

use std::io;
use std::path::{Path, PathBuf};

/// The ABI major version, the `0` of `libvaccel.so.0`: what programs built against upstream
/// vAccel 0.x ask for. `scripts/install.sh` names the installed files after `VACCEL_VERSION`
/// (`vaccel.h`), whose major a test checks against the SONAME.
const ABI_MAJOR: &str = "0";

/// C functions of `libvaccel.so` defined outside Rust (see the module docs).
const C_EXPORTS: &[&str] = &["slog_print"];

fn main() {
    // The inputs are the package name and OUT_DIR; cargo reruns the script itself when its
    // source changes, and a new target directory is a new OUT_DIR.
    println!("cargo::rerun-if-changed=Cargo.toml");
    if let Err(why) = library() {
        println!("cargo::warning=not naming the library as upstream does: {why}");
    }
}

/// Sets the SONAME and exports, then makes the links (nothing to do on targets without ELF
/// libraries).
fn library() -> Result<(), String> {
    let package = env("CARGO_PKG_NAME")?;
    // (cargo's file stem, upstream's file stem)
    let (built, upstream) = if package == "vaccel-capi-lib" {
        ("libvaccel".to_owned(), "libvaccel".to_owned())
    } else {
        let name = package
            .strip_prefix("vaccel-plugin-")
            .and_then(|rest| rest.strip_suffix("-lib"))
            .ok_or_else(|| {
                format!("package {package} is neither vaccel-capi-lib nor vaccel-plugin-<name>-lib")
            })?;
        // The library's crate name is `vaccel_<name>` (see [lib] in its Cargo.toml).
        (
            format!("libvaccel_{}", name.replace('-', "_")),
            format!("libvaccel-{name}"),
        )
    };
    let family = env("CARGO_CFG_TARGET_FAMILY")?;
    let os = env("CARGO_CFG_TARGET_OS")?;
    if !family.split(',').any(|f| f == "unix") || matches!(os.as_str(), "macos" | "ios") {
        return Ok(());
    }
    let soname = format!("{upstream}.so.{ABI_MAJOR}");
    println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    if package == "vaccel-capi-lib" {
        export_c_functions(&out_dir)?;
        // The plugin libraries `cpu` names (`libvaccel-onnx.so`, ...) are found beside the
        // library that loads them, as `scripts/install.sh` and cargo's profile directory lay
        // them out, without LD_LIBRARY_PATH (`dlopen` searches the caller's RUNPATH).
        println!("cargo::rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
    }
    let profile_dir = profile_dir(&out_dir, &package).ok_or_else(|| {
        format!(
            "OUT_DIR {} is not <target>/<profile>/build/{package}-<hash>/out",
            out_dir.display()
        )
    })?;
    let target = PathBuf::from(format!("{built}.so"));
    let mut links = vec![profile_dir.join(soname)];
    if built != upstream {
        links.push(profile_dir.join(format!("{upstream}.so")));
    }
    for link in links {
        make_link(&target, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(())
}

/// Adds [`C_EXPORTS`] to the library's dynamic symbols with a second version script (the
/// linker merges it with rustc's, which makes every symbol it does not list local).
fn export_c_functions(out_dir: &Path) -> Result<(), String> {
    let script = out_dir.join("c-exports.map");
    let text = format!("{{ global: {}; }};\n", C_EXPORTS.join("; "));
    std::fs::write(&script, text).map_err(|e| format!("{}: {e}", script.display()))?;
    println!(
        "cargo::rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    Ok(())
}

/// `<profile>` of `<target>/<profile>/build/<package>-<hash>/out`, the layout cargo gives
/// build scripts (also under `<target>/<triple>/<profile>` when cross-compiling).
fn profile_dir(out_dir: &Path, package: &str) -> Option<PathBuf> {
    let unit = out_dir
        .file_name()
        .filter(|n| *n == "out")
        .and(out_dir.parent())?;
    let hashed = unit.file_name()?.to_str()?;
    let hash = hashed.strip_prefix(package)?.strip_prefix('-')?;
    if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let build = unit
        .parent()
        .filter(|b| b.file_name() == Some("build".as_ref()))?;
    build.parent().map(Path::to_path_buf)
}

/// Points `link` at `target`, replacing a link that points elsewhere but never a file.
#[cfg(unix)]
fn make_link(target: &Path, link: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::read_link(link)? == target {
                return Ok(());
            }
            std::fs::remove_file(link)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a symbolic link; left as it is",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::os::unix::fs::symlink(target, link) {
        // Another build made the same link meanwhile.
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists && std::fs::read_link(link)? == target =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(not(unix))]
fn make_link(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symbolic links are made on Unix hosts only",
    ))
}

fn env(key: &str) -> Result<String, String> {
    std::env::var(key).map_err(|e| format!("{key}: {e}"))
}
