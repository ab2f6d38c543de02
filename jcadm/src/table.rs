//! Plain-text tables of JSON rows: one column per key, widths fitted to the contents.

use serde_json::Value;

/// A cell's text: strings as they are (timestamps to the second), null empty, other JSON
/// compact and cut to 60 characters.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => time(s).unwrap_or_else(|| s.clone()),
        Value::Array(a) if a.is_empty() => String::new(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        _ => crate::graph::shorten(&v.to_string(), 60),
    }
}

/// `2026-12-01T10:30:00.123+00:00` as `2026-12-01 10:30:00`.
pub fn time(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let is_time = b.len() >= 19
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit);
    is_time.then(|| format!("{} {}", &s[..10], &s[11..19]))
}

/// The rows as a table with the given (key, heading) columns; a `.` in a key reads a nested
/// field (`error.msg`).
pub fn render(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|(k, _)| cell(k.split('.').fold(r, |v, part| &v[part])))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, h))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |fields: Vec<&str>| -> String {
        let mut s = fields
            .iter()
            .zip(&widths)
            .map(|(f, w)| format!("{f:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(columns.iter().map(|(_, h)| *h).collect());
    for r in &cells {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_fit_their_widest_cell() {
        let rows = [
            json!({"id": 1, "name": "calltest", "e": {"msg": "x"}}),
            json!({"id": 22}),
        ];
        let t = render(
            &rows,
            &[("id", "ID"), ("name", "WORKFLOW"), ("e.msg", "MSG")],
        );
        assert_eq!(t, "ID  WORKFLOW  MSG\n1   calltest  x\n22\n");
    }

    #[test]
    fn timestamps_are_shown_to_the_second() {
        assert_eq!(
            cell(&json!("2026-12-01T10:30:00.123456+00:00")),
            "2026-12-01 10:30:00"
        );
        assert_eq!(cell(&json!("ready")), "ready");
    }
}
