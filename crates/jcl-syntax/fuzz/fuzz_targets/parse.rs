//! Fuzz target: the parser must not panic on any UTF-8 input, and an error's span must lie
//! inside the source and render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(d) = jcl_syntax::parse("fuzz.jcl", src) {
        assert!(d.span.start <= d.span.end && d.span.end <= src.len());
        assert!(src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end));
        let _ = d.render(src);
    }
});
