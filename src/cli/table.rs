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
        ("ip acls", &k["ip_acl_ids"]),
        ("groups", &k["group_ids"]),
        ("effective scopes", &k["effective_scopes"]),
        ("resources", &k["resources"]),
        ("owner", &k["owner_id"]),
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

pub fn print_api_list(list: &Value) {
    let empty = Vec::new();
    let apis = list["data"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = apis
        .iter()
        .map(|a| {
            vec![
                s(&a["id"]),
                s(&a["slug"]),
                s(&a["name"]),
                s(&a["key_prefix"]["live"]),
                s(&a["upstream"]),
                short_list(&a["hosts"]),
                a["routes"].as_array().map_or(0, Vec::len).to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "SLUG", "NAME", "PREFIX", "UPSTREAM", "HOSTS", "ROUTES",
        ],
        &rows,
    );
}

pub fn print_api(a: &Value) {
    let prefixes = format!(
        "{} / {}",
        s(&a["key_prefix"]["live"]),
        s(&a["key_prefix"]["test"])
    );
    let rate = match &a["default_rate_limit"] {
        Value::Null => "-".to_owned(),
        rl => format!("{}/{} s", s(&rl["requests"]), s(&rl["per_seconds"])),
    };
    let scopes: Vec<String> = a["scopes"]
        .as_array()
        .map(|list| list.iter().map(|sc| s(&sc["name"])).collect())
        .unwrap_or_default();
    let rows = [
        ("id", s(&a["id"])),
        ("name", s(&a["name"])),
        ("slug", s(&a["slug"])),
        ("key prefixes", prefixes),
        ("token types", s(&a["token_types"])),
        ("x-api-key", s(&a["accept_x_api_key"])),
        ("rate limit", rate),
        (
            "scopes",
            if scopes.is_empty() {
                "-".into()
            } else {
                scopes.join(",")
            },
        ),
        ("upstream", s(&a["upstream"])),
        ("hosts", s(&a["hosts"])),
    ];
    for (label, text) in rows {
        println!("{label:<13} {text}");
    }
    let routes = a["routes"].as_array().cloned().unwrap_or_default();
    if routes.is_empty() {
        println!("{:<13} - (every path; only the key is checked)", "routes");
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let any = |v: &Value| {
                if v.as_array().is_none_or(Vec::is_empty) {
                    "any".to_owned()
                } else {
                    s(v)
                }
            };
            vec![
                s(&r["path_prefix"]),
                any(&r["methods"]),
                any(&r["token_types"]),
                s(&r["required_scopes"]),
            ]
        })
        .collect();
    print_table(&["ROUTE", "METHODS", "TOKEN TYPES", "SCOPES"], &rows);
}
