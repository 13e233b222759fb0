//! Where the tests find SmolLM2-135M-Instruct (scripts/fetch-smollm2.sh puts it there).

use std::path::PathBuf;

/// The SmolLM2 GGUF file (env `WGQUANT_SMOLLM2`, else target/smollm2/), or None after a skip
/// message when it is absent, unless `WGQUANT_REQUIRE_MODEL=1` (CI) makes that a failure.
pub fn path() -> Option<PathBuf> {
    let path = std::env::var_os("WGQUANT_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("WGQUANT_REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!(
            "{} is missing and WGQUANT_REQUIRE_MODEL=1 (run scripts/fetch-smollm2.sh)",
            path.display()
        );
    }
    eprintln!(
        "skipped: {} not found (run scripts/fetch-smollm2.sh or set WGQUANT_SMOLLM2)",
        path.display()
    );
    None
}
