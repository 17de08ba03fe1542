//! What the workspace-level tests share.

use std::path::PathBuf;

/// The folder of the stage binaries built with this test (`make test` builds them first).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("split").is_file(),
        "stage binaries not built in {}: run `make test`",
        dir.display()
    );
    dir
}
