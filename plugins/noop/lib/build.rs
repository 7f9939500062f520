//! Gives a bundled plugin library its upstream file name in the profile directory:
//! `target/<profile>/libvaccel-<name>.so -> libvaccel_<name>.so`. Cargo cannot put `-` in a
//! library's file name, and upstream's users (and `VACCEL_PLUGINS=/path/libvaccel-noop.so`)
//! expect it there after `cargo build`.
//!
//! Shared by every `plugins/*/lib` crate (their `package.build` points here); the plugin name
//! comes from the package name, `vaccel-plugin-<name>-lib`. The link is relative, so it
//! survives moving the target directory, and it is made before the library is linked: it
//! dangles until then, which `VACCEL_PLUGINS` treats like a missing file (the bundled twin).
//! Nothing here fails the build: an unrecognised layout or an error is a cargo warning.

use std::io;
use std::path::{Path, PathBuf};

fn main() {
    // The inputs are the package name and OUT_DIR; cargo reruns the script itself when its
    // source changes, and a new target directory is a new OUT_DIR.
    println!("cargo::rerun-if-changed=Cargo.toml");
    if let Err(why) = upstream_link() {
        println!("cargo::warning=not linking the upstream library name: {why}");
    }
}

/// Makes the link (nothing to do on targets without Unix library names).
fn upstream_link() -> Result<(), String> {
    let package = env("CARGO_PKG_NAME")?;
    let name = package
        .strip_prefix("vaccel-plugin-")
        .and_then(|rest| rest.strip_suffix("-lib"))
        .ok_or_else(|| format!("package {package} is not named vaccel-plugin-<name>-lib"))?;
    let suffix = match (
        env("CARGO_CFG_TARGET_FAMILY")?.as_str(),
        env("CARGO_CFG_TARGET_OS")?.as_str(),
    ) {
        (_, "macos" | "ios") => "dylib",
        (family, _) if family.split(',').any(|f| f == "unix") => "so",
        _ => return Ok(()),
    };
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    let profile_dir = profile_dir(&out_dir, &package).ok_or_else(|| {
        format!(
            "OUT_DIR {} is not <target>/<profile>/build/{package}-<hash>/out",
            out_dir.display()
        )
    })?;
    // The library's crate name is `vaccel_<name>` (see [lib] in Cargo.toml).
    let target = PathBuf::from(format!("libvaccel_{}.{suffix}", name.replace('-', "_")));
    let link = profile_dir.join(format!("libvaccel-{name}.{suffix}"));
    make_link(&target, &link).map_err(|e| format!("{}: {e}", link.display()))
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
