//! Readable output of the CLI.

use serde_json::Value;

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn print_key(k: &Value) {
    let rows = [
        ("id", &k["id"]),
        ("name", &k["name"]),
        ("prefix", &k["prefix"]),
        ("type", &k["type"]),
        ("environment", &k["environment"]),
        ("status", &k["status"]),
        ("scopes", &k["scopes"]),
        ("ip allowlist", &k["ip_allowlist"]),
        ("expires", &k["expires_at"]),
        ("created", &k["created_at"]),
        ("last used", &k["last_used_at"]),
        ("last used ip", &k["last_used_ip"]),
        ("replaces", &k["replaces"]),
        ("replaced by", &k["replaced_by"]),
        ("revoked at", &k["revoked_at"]),
    ];
    for (label, v) in rows {
        let text = if label == "prefix" {
            format!("{}••••", s(v))
        } else {
            s(v)
        };
        println!("{label:<13} {text}");
    }
}

/// A list cut to its first two entries and a count of the rest, for table cells.
fn short_list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if a.len() > 2 => format!("{},{} (+{})", s(&a[0]), s(&a[1]), a.len() - 2),
        _ => s(v),
    }
}

pub fn print_key_list(page: &Value) {
    let empty = Vec::new();
    let keys = page["data"].as_array().unwrap_or(&empty);
    if keys.is_empty() {
        println!("No keys.");
        return;
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                s(&k["id"]),
                s(&k["name"]),
                format!("{}••••", s(&k["prefix"])),
                s(&k["type"]),
                s(&k["status"]),
                short_list(&k["scopes"]),
                s(&k["expires_at"]),
                s(&k["last_used_at"]),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "NAME",
            "PREFIX",
            "TYPE",
            "STATUS",
            "SCOPES",
            "EXPIRES",
            "LAST USED",
        ],
        &rows,
    );
    if let Some(c) = page["next_cursor"].as_str() {
        println!("(more: --cursor {c})");
    }
}
