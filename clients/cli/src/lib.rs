//! Shared code of `jcclient` and `jcworker`: connection options (flags, `JC_` environment
//! variables, a TOML file), JSON arguments, and the worker's shell and HTTP executors.

pub mod conn;
pub mod exec;
pub mod worker_config;

/// Reads a JSON argument: `-` is standard input, `@FILE` a file, anything else the JSON text.
pub fn read_json_arg(arg: &str) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading JSON from standard input")?;
        s
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    } else {
        arg.to_owned()
    };
    serde_json::from_str(&text).with_context(|| format!("not valid JSON: {}", abbreviate(&text)))
}

fn abbreviate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_arguments_literal_and_file() {
        assert_eq!(
            read_json_arg(r#"{"a": 1}"#).unwrap(),
            serde_json::json!({"a": 1})
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.json");
        std::fs::write(&p, "[1, 2]").unwrap();
        assert_eq!(
            read_json_arg(&format!("@{}", p.display())).unwrap(),
            serde_json::json!([1, 2])
        );
        let e = read_json_arg("{nope").unwrap_err();
        assert!(e.to_string().contains("not valid JSON: {nope"), "{e}");
        assert!(read_json_arg("@/no/such/file").is_err());
    }
}
