//! The jobcenter PostgreSQL extension.
//!
//! The tables and the stored procedures of the job state machine live in `sql/` and are
//! loaded in order by `extension_sql_file!`. This crate adds the functions that need Rust:
//! evaluating compiled JCL (the `jcl` crate, the same code `jcc` type-checks with), checking
//! values against JSON Schemas (the `jsonschema` crate), validating workflow models and
//! running a procedure step as its workflow's owner (`run_as`).

use pgrx::prelude::*;
use pgrx::JsonB;

mod cron;
mod jcl_fns;
mod json_arg;
mod model_cache;
mod plot;
mod run_as;
mod schema_check;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/engine.sql", name = "engine", requires = ["schema"]);
extension_sql_file!("../sql/system.sql", name = "system", requires = ["engine"]);
extension_sql_file!(
    "../sql/children.sql",
    name = "children",
    requires = ["system"]
);
extension_sql_file!(
    "../sql/maintenance.sql",
    name = "maintenance",
    requires = ["children"]
);
extension_sql_file!(
    "../sql/loader.sql",
    name = "loader",
    requires = ["maintenance"]
);
extension_sql_file!(
    "../sql/schedules.sql",
    name = "schedules",
    requires = ["loader"]
);
extension_sql_file!(
    "../sql/compiler.sql",
    name = "compiler",
    requires = ["loader"]
);
extension_sql_file!(
    "../sql/api.sql",
    name = "api",
    requires = ["compiler", "schedules"]
);
extension_sql_file!("../sql/admin.sql", name = "admin", requires = ["api"]);
// Last: it alters and grants every function above (SQL and Rust).
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

pub use jcl_fns::*;
pub use schema_check::*;

/// The IR version this build of the extension evaluates.
#[pg_extern(immutable, parallel_safe)]
fn jcl_ir_version() -> i32 {
    jcl::IR_VERSION as i32
}

/// The UUID a task cookie spells, or null when it spells none: 32 hexadecimal digits in
/// either case, with or without a hyphen after the 8th, 12th, 16th and 20th (the spellings
/// `task_done` and `tasks_done` take). A cookie comes from the client as text, and one that is
/// no UUID must find no task rather than fail the cast.
#[pg_extern(immutable, parallel_safe)]
fn cookie_uuid(cookie: &str) -> Option<pgrx::Uuid> {
    let mut bytes = [0u8; 16];
    let mut digits = 0usize;
    let mut hyphen_ok = false;
    for c in cookie.bytes() {
        if c == b'-' {
            if !hyphen_ok {
                return None;
            }
            hyphen_ok = false;
            continue;
        }
        let d = char::from(c).to_digit(16)?;
        if digits == 32 {
            return None;
        }
        bytes[digits / 2] |= (d as u8) << if digits.is_multiple_of(2) { 4 } else { 0 };
        digits += 1;
        hyphen_ok = matches!(digits, 8 | 12 | 16 | 20);
    }
    (digits == 32).then(|| pgrx::Uuid::from_bytes(bytes))
}

/// Placeholder keeping `JsonB` in scope for the submodules' signatures.
#[allow(dead_code)]
fn _jsonb_type(_j: JsonB) {}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::json;

    #[pg_test]
    fn eval_in_backend_uses_jcl() {
        let r = Spi::get_one::<JsonB>(
            r#"select jobcenter.jcl_eval('{"ir":1,"cond":{"binary":{"op":"add","left":{"lit":2},"right":{"path":{"ns":"a","segs":[{"key":"x"}]}}}}}'::jsonb, 'cond', '{"a":{"x":3}}'::jsonb)"#,
        );
        let v = r.ok().flatten().map(|j| j.0);
        assert_eq!(v, Some(json!({"value": 5})));
    }

    #[pg_test]
    fn cookie_uuid_takes_the_spellings_of_a_uuid_and_nothing_else() {
        let one = |s: &str| {
            Spi::get_one_with_args::<String>("select jobcenter.cookie_uuid($1)::text", &[s.into()])
                .ok()
                .flatten()
        };
        let want = Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_owned());
        assert_eq!(one("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), want);
        assert_eq!(one("A0EEBC999C0B4EF8BB6D6BB9BD380A11"), want);
        assert_eq!(one("a0eebc99-9c0b4ef8-bb6d6bb9bd380a11"), want);
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1é",
        ] {
            assert_eq!(one(bad), None, "{bad:?}");
        }
    }

    #[pg_test]
    fn check_value_reports_mismatch() {
        let ok = Spi::get_one::<String>(
            r#"select jobcenter.check_value('{"type":"string"}'::jsonb, '"x"'::jsonb)"#,
        );
        assert_eq!(ok.ok().flatten(), None);
        let bad = Spi::get_one::<String>(
            r#"select jobcenter.check_value('{"type":"string"}'::jsonb, '1'::jsonb)"#,
        );
        assert!(bad.ok().flatten().is_some());
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
