//! Locating the repository root (the directory holding `template.yaml`).

use std::path::{Path, PathBuf};

/// The file that marks the repository root.
pub const TEMPLATE_FILE: &str = "template.yaml";

#[derive(Debug, thiserror::Error)]
#[error("no {TEMPLATE_FILE} found in {start} or any parent directory")]
pub struct RepoRootNotFound {
    pub start: PathBuf,
}

/// The repository root, found from this crate's manifest directory.
///
/// Works for tests and for binaries run from the build tree; set
/// `COURSEWIRE_REPO_ROOT` to point elsewhere (e.g. an installed runner).
pub fn repo_root() -> Result<PathBuf, RepoRootNotFound> {
    if let Some(dir) = std::env::var_os("COURSEWIRE_REPO_ROOT") {
        return find_repo_root(Path::new(&dir));
    }
    find_repo_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// Walks up from `start` to the first directory containing `template.yaml`.
pub fn find_repo_root(start: &Path) -> Result<PathBuf, RepoRootNotFound> {
    start
        .ancestors()
        .find(|dir| dir.join(TEMPLATE_FILE).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| RepoRootNotFound {
            start: start.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_root_from_the_crate_dir() {
        let root = repo_root().expect("repo root");
        assert!(root.join(TEMPLATE_FILE).is_file());
        assert!(root.join("infra/local/Cargo.toml").is_file());
        assert!(find_repo_root(Path::new("/")).is_err());
    }
}
