//! What a remote client may name in `RegisterResource` besides its own bytes (docs/security.md).
//!
//! By default a resource's data comes only from the client, as blobs: a client cannot make
//! the agent read its host's files or fetch URLs only the host can reach. The operator opens
//! host directories with `--allow-path` and URL prefixes with `--allow-url`; downloads are
//! capped by `--max-download-bytes`.
//!
//! ```
//! use vaccel_agent::policy::ResourcePolicy;
//!
//! let dir = std::env::temp_dir();
//! let policy = ResourcePolicy::new(&[dir], &["https://models.example/".into()], 1 << 20)?;
//! assert!(policy.check(&["https://models.example/m.pt".into()]).is_ok());
//! assert!(policy.check(&["http://169.254.169.254/latest/meta-data".into()]).is_err());
//! assert!(policy.check(&["/etc/shadow".into()]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

/// The default of `--max-download-bytes`: 256 MiB.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 256 << 20;

/// The most entries a directory a client names may hold (all levels): a walk of a whole
/// host tree costs the agent time and memory for every request.
pub const MAX_TREE_ENTRIES: usize = 4096;

/// How deep a directory a client names may be (the runtime's own limit).
const MAX_TREE_DEPTH: usize = 64;

/// How long one download may take, from connecting to the last byte.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The operator's policy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// An `--allow-path` directory does not exist or cannot be resolved.
    #[error("--allow-path {}: cannot resolve it", path.display())]
    AllowPath {
        /// As given.
        path: PathBuf,
        /// Why `canonicalize` failed.
        #[source]
        source: std::io::Error,
    },
    /// An `--allow-path` is not a directory.
    #[error("--allow-path {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// An `--allow-url` prefix is not `http://HOST...` or `https://HOST...`.
    #[error("--allow-url {0}: expected a prefix of the form http(s)://HOST[:PORT][/PATH]")]
    AllowUrl(String),
}

/// Why a client's paths were refused; the message names the agent option that allows them.
/// Nothing in it depends on whether a path exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A host path outside every `--allow-path` directory, or missing, or unresolvable.
    #[error(
        "host path {0} is not allowed: this agent reads host paths only inside its \
         --allow-path directories; send the data as blobs instead"
    )]
    Path(String),
    /// A URL under no `--allow-url` prefix.
    #[error(
        "URL {0} is not allowed: this agent downloads only URLs under its --allow-url \
         prefixes; send the data as blobs instead"
    )]
    Url(String),
    /// Paths and URLs mixed in one request.
    #[error("resource paths cannot be of different types")]
    Mixed,
    /// An allowed directory holds a symlink that leads out of the allowed directories (or
    /// nowhere).
    #[error("{0} links outside the --allow-path directories")]
    TreeEscapes(String),
    /// An allowed directory holds more entries than the limit (`--max-files-per-directory`,
    /// [`MAX_TREE_ENTRIES`] by default) or is deeper than the runtime walks.
    #[error(
        "{0} holds too many entries (at most {1}; raise it with --max-files-per-directory) or \
         is nested too deeply"
    )]
    TreeTooLarge(String, usize),
}

/// A download the agent made for a client failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The body is larger than `--max-download-bytes` (all the request's URLs together).
    #[error(
        "downloading {url}: larger than the agent's limit of {limit} bytes (--max-download-bytes)"
    )]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The server answered something other than 2xx (redirects are not followed: their target
    /// would escape the allowed prefixes).
    #[error("downloading {url}: the server answered HTTP {status} (redirects are not followed)")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The request failed (connection, TLS, timeout, HTTP error).
    #[error("downloading {url}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: ureq::Error,
    },
    /// Reading the body failed.
    #[error("downloading {url}")]
    Read {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// What a client's `paths` stand for once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Host files or one directory, resolved (symlinks followed): what the runtime opens, so a
    /// symlink swapped after the check cannot lead elsewhere.
    Local(Vec<String>),
    /// URLs under an allowed prefix, for [`ResourcePolicy::download`].
    Urls(Vec<String>),
}

/// The operator's resource policy. The default allows nothing but blobs.
#[derive(Debug, Clone)]
pub struct ResourcePolicy {
    /// Canonical directories.
    dirs: Vec<PathBuf>,
    /// URL prefixes, scheme and authority lowercased.
    urls: Vec<String>,
    max_download_bytes: u64,
    /// Entries an allowed directory may hold.
    max_tree_entries: usize,
}

impl Default for ResourcePolicy {
    fn default() -> Self {
        ResourcePolicy {
            dirs: Vec::new(),
            urls: Vec::new(),
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            max_tree_entries: MAX_TREE_ENTRIES,
        }
    }
}

/// A URL's `scheme://authority` lowercased and the rest as is; `None` unless http(s) with a
/// host.
fn split_url(url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() || authority.contains(['@', '\\']) {
        return None;
    }
    Some((
        format!("{scheme}://{}", authority.to_ascii_lowercase()),
        tail,
    ))
}

/// Whether `url` is under `prefix`: the same scheme and authority, and a path that starts
/// with the prefix's path at a segment boundary. Dot segments and escaped dots are refused
/// (a server would resolve them out of the prefix), as are backslashes.
fn url_allowed(prefix: &str, url: &str) -> bool {
    let (Some((p_origin, p_tail)), Some((u_origin, u_tail))) = (split_url(prefix), split_url(url))
    else {
        return false;
    };
    if p_origin != u_origin || !u_tail.starts_with(p_tail) {
        return false;
    }
    let path = u_tail.split(['?', '#']).next().unwrap_or_default();
    if path.contains('\\')
        || path.to_ascii_lowercase().contains("%2e")
        || path.split('/').any(|s| s == "." || s == "..")
    {
        return false;
    }
    // `https://h/models` must not allow `https://h/models-private/`.
    let rest = u_tail.get(p_tail.len()..).unwrap_or_default();
    p_tail.is_empty() || p_tail.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
}

fn is_url(path: &str) -> bool {
    path.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.eq_ignore_ascii_case("file") && !scheme.is_empty())
}

impl ResourcePolicy {
    /// A policy allowing host paths inside `dirs` (which must exist) and URLs under
    /// `url_prefixes` (`http(s)://HOST[:PORT][/PATH]`), downloading at most
    /// `max_download_bytes` per request.
    pub fn new(
        dirs: &[PathBuf],
        url_prefixes: &[String],
        max_download_bytes: u64,
    ) -> Result<ResourcePolicy, PolicyError> {
        let mut canonical = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let c = std::fs::canonicalize(dir).map_err(|source| PolicyError::AllowPath {
                path: dir.clone(),
                source,
            })?;
            if !c.is_dir() {
                return Err(PolicyError::NotADirectory(dir.clone()));
            }
            canonical.push(c);
        }
        for prefix in url_prefixes {
            if split_url(prefix).is_none() {
                return Err(PolicyError::AllowUrl(prefix.clone()));
            }
        }
        Ok(ResourcePolicy {
            dirs: canonical,
            urls: url_prefixes.to_vec(),
            max_download_bytes,
            max_tree_entries: MAX_TREE_ENTRIES,
        })
    }

    /// The allowed directories, resolved.
    pub fn allowed_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The allowed URL prefixes.
    pub fn allowed_urls(&self) -> &[String] {
        &self.urls
    }

    /// Sets how many entries (all levels) an allowed directory may hold
    /// (`--max-files-per-directory`).
    pub fn set_max_tree_entries(&mut self, entries: u64) {
        self.max_tree_entries = usize::try_from(entries).unwrap_or(usize::MAX);
    }

    /// The download cap per request, in bytes.
    pub fn max_download_bytes(&self) -> u64 {
        self.max_download_bytes
    }

    /// Checks a client's `paths` before anything touches them (beyond resolving host paths).
    pub fn check(&self, paths: &[String]) -> Result<Allowed, Refusal> {
        let urls = paths.iter().filter(|p| is_url(p)).count();
        if urls == paths.len() {
            for url in paths {
                if !self.urls.iter().any(|p| url_allowed(p, url)) {
                    return Err(Refusal::Url(url.clone()));
                }
            }
            return Ok(Allowed::Urls(paths.to_vec()));
        }
        if urls > 0 {
            return Err(Refusal::Mixed);
        }
        let mut local = Vec::with_capacity(paths.len());
        for path in paths {
            let resolved = self
                .resolve(path)
                .ok_or_else(|| Refusal::Path(path.clone()))?;
            if Path::new(&resolved).is_dir() {
                self.check_tree(Path::new(&resolved))?;
            }
            local.push(resolved);
        }
        Ok(Allowed::Local(local))
    }

    /// Checks an allowed directory before the runtime reads it: bounded in size and depth,
    /// and no symlink in it leads out of the allowed directories (the runtime follows
    /// symlinked files).
    fn check_tree(&self, root: &Path) -> Result<(), Refusal> {
        let shown = || root.display().to_string();
        let mut entries = 0;
        let mut stack = vec![(root.to_path_buf(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            if depth > MAX_TREE_DEPTH {
                return Err(Refusal::TreeTooLarge(shown(), self.max_tree_entries));
            }
            // An unreadable directory fails later, in the runtime, as it would for the agent's
            // own resources: it is inside an allowed directory.
            let Ok(list) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in list.flatten() {
                entries += 1;
                if entries > self.max_tree_entries {
                    return Err(Refusal::TreeTooLarge(shown(), self.max_tree_entries));
                }
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push((entry.path(), depth + 1));
                } else if kind.is_symlink() && self.inside(&entry.path()).is_none() {
                    // Dangling links too: whether a target outside exists is not for clients
                    // to learn.
                    return Err(Refusal::TreeEscapes(entry.path().display().to_string()));
                }
            }
        }
        Ok(())
    }

    /// `path` resolved, when it lies inside an allowed directory. Missing, unresolvable and
    /// outside all read the same (`None`): the answer says nothing about the host's files.
    fn resolve(&self, path: &str) -> Option<String> {
        if self.dirs.is_empty() {
            return None;
        }
        let plain = match path.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => rest,
            _ => path,
        };
        let plain = Path::new(plain);
        if !plain.is_absolute() {
            return None;
        }
        self.inside(plain)?.into_os_string().into_string().ok()
    }

    /// `path` resolved, symlinks followed, when that lies inside an allowed directory.
    fn inside(&self, path: &Path) -> Option<PathBuf> {
        let resolved = std::fs::canonicalize(path).ok()?;
        self.dirs
            .iter()
            .any(|d| resolved.starts_with(d))
            .then_some(resolved)
    }

    /// Downloads allowed `urls` into memory (redirects not followed; all bodies together at
    /// most the cap, checked before anything is kept). Each comes back with its file name:
    /// the last path segment, or `file`.
    pub fn download(&self, urls: &[String]) -> Result<Vec<(String, Bytes)>, DownloadError> {
        self.download_at_most(urls, self.max_download_bytes)
    }

    /// [`ResourcePolicy::download`] with a lower cap: `limit` bytes (what a client's quota
    /// leaves it, when that is less than the policy's cap).
    pub fn download_at_most(
        &self,
        urls: &[String],
        limit: u64,
    ) -> Result<Vec<(String, Bytes)>, DownloadError> {
        let limit = limit.min(self.max_download_bytes);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(DOWNLOAD_TIMEOUT))
            .build()
            .into();
        let mut left = limit;
        let mut out = Vec::with_capacity(urls.len());
        for url in urls {
            let too_large = || DownloadError::TooLarge {
                url: url.clone(),
                limit,
            };
            log::debug!("Downloading {url} (at most {left} bytes)");
            let response = agent
                .get(url)
                .call()
                .map_err(|source| DownloadError::Http {
                    url: url.clone(),
                    source,
                })?;
            let status = response.status();
            if !status.is_success() {
                return Err(DownloadError::Status {
                    url: url.clone(),
                    status: status.as_u16(),
                });
            }
            let body = response.into_body();
            if body.content_length().is_some_and(|n| n > left) {
                return Err(too_large());
            }
            let mut data = Vec::new();
            body.into_reader()
                .take(left.saturating_add(1))
                .read_to_end(&mut data)
                .map_err(|source| DownloadError::Read {
                    url: url.clone(),
                    source,
                })?;
            let len = data.len() as u64;
            if len > left {
                return Err(too_large());
            }
            left -= len;
            out.push((url_file_name(url), Bytes::from(data)));
        }
        Ok(out)
    }
}

/// The last segment of a URL's path (query and fragment cut), or `file`.
fn url_file_name(url: &str) -> String {
    split_url(url)
        .map(|(_, tail)| tail.split(['?', '#']).next().unwrap_or_default())
        .and_then(|path| path.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("file")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefixes_match_at_boundaries_only() {
        let p = "https://Models.Example/pub";
        assert!(url_allowed(p, "https://models.example/pub/m.pt"));
        assert!(url_allowed(p, "HTTPS://MODELS.EXAMPLE/pub"));
        assert!(url_allowed(p, "https://models.example/pub?x=1"));
        assert!(!url_allowed(p, "https://models.example/public/m.pt"));
        assert!(!url_allowed(p, "https://models.example/pub/../admin"));
        assert!(!url_allowed(p, "https://models.example/pub/%2e%2E/admin"));
        assert!(!url_allowed(p, "https://models.example.evil/pub/m.pt"));
        assert!(!url_allowed(p, "https://models.example@evil/pub/m.pt"));
        assert!(!url_allowed(p, "http://models.example/pub/m.pt"));
        assert!(!url_allowed(p, "https://models.example:8443/pub/m.pt"));
        let host = "http://127.0.0.1:8080";
        assert!(url_allowed(host, "http://127.0.0.1:8080/x"));
        assert!(!url_allowed(host, "http://127.0.0.1:80800/x"));
        assert!(url_allowed("http://h/", "http://h/a/b"));
        assert!(!url_allowed("ftp://h/", "ftp://h/a"));
    }

    #[test]
    fn nothing_but_blobs_by_default() {
        let p = ResourcePolicy::default();
        assert_eq!(
            p.check(&["/etc/passwd".into()]),
            Err(Refusal::Path("/etc/passwd".into()))
        );
        assert_eq!(
            p.check(&["http://127.0.0.1/".into()]),
            Err(Refusal::Url("http://127.0.0.1/".into()))
        );
        let msg = Refusal::Path("/x".into()).to_string();
        assert!(msg.contains("--allow-path"), "{msg}");
        assert!(Refusal::Url("u".into()).to_string().contains("--allow-url"));
    }

    #[test]
    fn paths_resolve_inside_allowed_dirs_only() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("models");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("m.pt"), b"m").unwrap();
        std::fs::write(root.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), allowed.join("link")).unwrap();
        let p = ResourcePolicy::new(std::slice::from_ref(&allowed), &[], 10).unwrap();
        let inside = allowed.join("m.pt").display().to_string();
        let canonical = std::fs::canonicalize(&inside).unwrap();
        assert_eq!(
            p.check(std::slice::from_ref(&inside)),
            Ok(Allowed::Local(vec![canonical.display().to_string()]))
        );
        assert!(p.check(&[format!("file://{inside}")]).is_ok());
        for refused in [
            allowed.join("link"),
            allowed.join("missing"),
            allowed.join("../secret"),
            root.path().join("secret"),
            root.path().join("missing"),
        ] {
            let s = refused.display().to_string();
            assert_eq!(p.check(std::slice::from_ref(&s)), Err(Refusal::Path(s)));
        }
        assert_eq!(
            p.check(&["models/m.pt".into()]),
            Err(Refusal::Path("models/m.pt".into()))
        );
        assert_eq!(p.check(&[inside, "http://h/x".into()]), Err(Refusal::Mixed));
        // A directory inside, with a symlink out: refused; with the link gone, allowed.
        let tree = allowed.join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("a"), b"a").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), tree.join("out")).unwrap();
        let tree_s = tree.display().to_string();
        assert!(matches!(
            p.check(std::slice::from_ref(&tree_s)),
            Err(Refusal::TreeEscapes(_))
        ));
        std::fs::remove_file(tree.join("out")).unwrap();
        std::os::unix::fs::symlink(tree.join("a"), tree.join("in")).unwrap();
        assert!(p.check(std::slice::from_ref(&tree_s)).is_ok());
        for i in 0..MAX_TREE_ENTRIES {
            std::fs::write(tree.join(format!("f{i}")), b"").unwrap();
        }
        assert!(matches!(
            p.check(std::slice::from_ref(&tree_s)),
            Err(Refusal::TreeTooLarge(_, MAX_TREE_ENTRIES))
        ));
        let mut small = p.clone();
        small.set_max_tree_entries(3);
        assert!(matches!(
            small.check(&[tree_s]),
            Err(Refusal::TreeTooLarge(_, 3))
        ));
        assert!(ResourcePolicy::new(&[root.path().join("nope")], &[], 1).is_err());
        assert!(ResourcePolicy::new(&[], &["file:///etc".into()], 1).is_err());
    }

    #[test]
    fn file_names_of_urls() {
        assert_eq!(url_file_name("http://h/a/m.pt?x=/y#z"), "m.pt");
        assert_eq!(url_file_name("http://h/"), "file");
        assert_eq!(url_file_name("http://h"), "file");
    }
}
