//! Rendered syntax errors, one or more per code, snapshotted; and the JSON form.
#![allow(clippy::unwrap_used)]

/// Parses `src` as `name.jcl` and renders its error.
fn render(name: &str, src: &str) -> String {
    match jcl_syntax::parse(&format!("{name}.jcl"), src) {
        Ok(_) => panic!("{name}: expected an error"),
        Err(d) => d.render(src),
    }
}

macro_rules! snap {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(render(stringify!($name), $src));
        }
    };
}

snap!(
    jc0101_missing_colon,
    "workflow calltest:\ndo:\n\tcall add\n\t\tcounter = a.input\n"
);
snap!(
    jc0101_assignment_as_comparison,
    "workflow w:\ndo:\n\tif v.x = 1:\n\t\treturn\n"
);
snap!(
    jc0101_bad_param,
    "workflow w:\nin:\n\tplan string = 'basic'\n"
);
snap!(
    jc0101_until_colon,
    "workflow w:\ndo:\n\trepeat:\n\t\treturn\n\tuntil v.done:\n"
);
snap!(
    jc0102_dedent,
    "workflow w:\ndo:\n\teval:\n\t\tx = 1\n\t    y = 2\n"
);
snap!(
    jc0103_missing_block,
    "workflow w:\ndo:\n\tif v.x:\n\treturn\n"
);
snap!(
    jc0104_unexpected_block,
    "workflow w:\ndo:\n\treturn\n\t\treturn\n"
);
snap!(
    jc0117_into_indented,
    "workflow w:\ndo:\n\tcall x:\n\t\ta = 1\n\t\tinto:\n\t\t\tb = o.b\n"
);
snap!(jc0105_unknown_statement, "workflow w:\ndo:\n\tcal add:\n");
snap!(
    jc0106_unknown_section,
    "workflow w:\nconfg:\n\tmax_steps = 3\n"
);
snap!(
    jc0107_duplicate_section,
    "workflow w:\nin:\n\tx string\nout:\n\ty string\nin:\n\tz string\n"
);
snap!(jc0108_no_header, "in:\n\tx string\n");
snap!(
    jc0109_perl,
    "workflow w:\ndo:\n\tif [[ $v{name} =~ /^www/ ]]:\n\t\treturn\n"
);
snap!(
    jc0110_unterminated_string,
    "workflow w:\ndo:\n\tsleep '5 seconds\n"
);
snap!(
    jc0111_bare_name,
    "workflow w:\ndo:\n\teval:\n\t\tx = thing + 1\n"
);
snap!(
    jc0112_unknown_function,
    "workflow w:\ndo:\n\teval:\n\t\tx = lenght(v.list)\n"
);
snap!(
    jc0113_chained_comparison,
    "workflow w:\ndo:\n\tif 0 < v.x < 10:\n\t\treturn\n"
);
snap!(
    jc0114_bad_escape,
    "workflow w:\ndo:\n\tsleep 'C:\\temp\\x'\n"
);
snap!(
    jc0115_bad_regex,
    "workflow w:\ndo:\n\tif v.x ~ /a(b/:\n\t\treturn\n"
);
snap!(
    jc0116_too_deep,
    &format!("workflow w:\ndo:\n\tsleep {}1\n", "(".repeat(100))
);
snap!(
    jc0117_else_without_if,
    "workflow w:\ndo:\n\treturn\n\telse:\n\t\treturn\n"
);
snap!(
    jc0118_try_without_catch,
    "workflow w:\ndo:\n\ttry:\n\t\treturn\n\treturn\n"
);
snap!(jc0119_two_roles, "workflow w:\nrole:\n\tadmin\n\tjobs\n");

#[test]
fn json_form() {
    let src = "workflow w:\ndo:\n\teval:\n\t\tx = lenght(v.list)\n";
    let d = jcl_syntax::parse("w.jcl", src).unwrap_err();
    insta::assert_snapshot!(serde_json::to_string_pretty(&d).unwrap());
    assert_eq!(d.to_json()["code"], "JC0112");
}

#[test]
fn display_is_the_first_line() {
    let d = jcl_syntax::parse("w.jcl", "workflow w\n").unwrap_err();
    assert_eq!(
        d.to_string(),
        "w.jcl:1:11: error[JC0101]: expected `:` after `workflow w`"
    );
}
