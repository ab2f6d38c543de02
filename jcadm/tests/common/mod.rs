//! What jcadm's tests share: compiling the fixture workflows.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use tokio_postgres::Client;

/// Compiles the fixture files with the compiler's library.
pub async fn compile(c: &mut Client, names: &[&str], force: bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let sources = names
        .iter()
        .map(|n| {
            let path = dir.join(format!("{n}.jcl"));
            jcc::SourceFile::new(
                path.to_string_lossy(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    let (parsed, diags) = jcc::parse(sources);
    assert!(diags.is_empty(), "{diags:?}");
    let opts = jcc::db::WriteOptions {
        force,
        ..Default::default()
    };
    let (out, _) = jcc::db::compile_and_write(c, &parsed, &opts).await.unwrap();
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
}
