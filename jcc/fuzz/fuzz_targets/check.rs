//! Fuzz target: the compiler's checks and lowering on input that parses. The input is up to
//! four source files separated by NUL bytes (so calls between files, duplicates and cycles
//! are reached); `scripts/fuzz` seeds it with the example and corpus files, so most mutants
//! still parse and reach the checker. Nothing may panic; every diagnostic's span lies in
//! its file and renders; and a file without errors lowers to a model that passes the
//! loader's structural checks (JC0299 is a compiler bug) and survives its JSON round trip.
#![no_main]

use jcc::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<SourceFile> = text
        .split('\0')
        .take(4)
        .enumerate()
        .map(|(k, t)| SourceFile::new(format!("f{k}.jcl"), t))
        .collect();
    let (parsed, _) = jcc::parse(sources.clone());
    if parsed.iter().all(|p| p.ast.is_none()) {
        return;
    }
    let out = jcc::check_and_lower(&parsed, &jcc::Catalog::offline());
    for d in &out.diagnostics {
        assert_ne!(d.code, jcc::codes::INTERNAL, "{}", jcc::render(&[d.clone()], &sources));
        let src = sources
            .iter()
            .find(|s| s.name == d.file)
            .unwrap_or_else(|| panic!("a diagnostic of an unknown file {}", d.file));
        let t = src.text.as_str();
        assert!(d.span.start <= d.span.end && d.span.end <= t.len(), "{d:?}");
        assert!(t.is_char_boundary(d.span.start) && t.is_char_boundary(d.span.end), "{d:?}");
        let _ = d.render(t);
    }
    if out.has_errors() {
        return;
    }
    for u in &out.units {
        u.model.validate().expect("a clean compile gives a valid model");
        let stored = serde_json::to_string(&u.model).expect("the model serialises");
        let loaded: jcl::Model = serde_json::from_str(&stored).expect("the stored model loads");
        assert_eq!(loaded, u.model, "the model changed in its round trip");
    }
});
