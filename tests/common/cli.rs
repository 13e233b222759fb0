//! Running the `wgquant` binary the way a user does, for the command-line tests.

use std::process::{Command, Output};

/// Run `wgquant args...` and collect its output.
pub fn wgquant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgquant"))
        .args(args)
        .output()
        .expect("run wgquant")
}

/// A path as a command-line argument.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// (stdout, stderr) as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs, expects success, returns (stdout, stderr).
pub fn ok(args: &[&str]) -> (String, String) {
    let o = wgquant(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "wgquant {args:?} failed:\n{out}\n{err}");
    (out, err)
}

/// Runs, expects a clean failure (non-zero exit, an `error:` message, no panic), returns the
/// exit code and stderr.
pub fn failure(args: &[&str]) -> (Option<i32>, String) {
    let o = wgquant(args);
    let (out, err) = text(&o);
    assert!(
        !o.status.success(),
        "wgquant {args:?} should fail:\n{out}\n{err}"
    );
    assert!(
        !err.contains("panicked"),
        "wgquant {args:?} panicked:\n{err}"
    );
    assert!(
        err.contains("error:"),
        "wgquant {args:?}: no error message:\n{err}"
    );
    (o.status.code(), err)
}

/// [`failure`], returning stderr.
pub fn fails(args: &[&str]) -> String {
    failure(args).1
}

/// `wgquant matmul` of weight `tensor` in the GGUF file `weights` by `x` (`n` rows of `k`),
/// through .npy files in `dir`: Y's shape and values.
pub fn matmul(
    weights: &std::path::Path,
    tensor: &str,
    x: &[f32],
    (n, k): (usize, usize),
    dir: &std::path::Path,
) -> wgquant::io::Array {
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    wgquant::io::write_npy(&xp, &[n, k], x).unwrap();
    ok(&[
        "matmul",
        "--weights",
        s(weights),
        "--tensor",
        tensor,
        "--input",
        s(&xp),
        "--output",
        s(&yp),
    ]);
    wgquant::io::read_npy(&yp).unwrap()
}
