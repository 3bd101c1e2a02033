//! `keyward usage`: the organization's usage, or one key's, through a running server.

use clap::Args;
use serde_json::Value;

use super::ClientArgs;
use super::client::{Client, path_segment};
use super::table::{print_json, print_table};

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// A key id: that key's usage instead of the organization's.
    #[arg(long)]
    pub key: Option<String>,
    /// Start, an RFC 3339 time (rounded down to its bucket). Default: the last 60 minutes, 24
    /// hours or 30 days (by minute, hour or day).
    #[arg(long)]
    pub from: Option<String>,
    /// End, an RFC 3339 time (rounded up to its bucket). Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// minute, hour (default) or day.
    #[arg(long)]
    pub granularity: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: UsageArgs) -> anyhow::Result<i32> {
    let c = Client::new(&args.client)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("from", args.from),
        ("to", args.to),
        ("granularity", args.granularity),
    ] {
        if let Some(v) = value {
            query.push((name, v));
        }
    }
    let path = match &args.key {
        Some(id) => format!("/v1/keys/{}/usage", path_segment(id)),
        None => "/v1/account/usage".to_owned(),
    };
    let report = c.get_query(&path, &query).await?;
    if args.client.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(0)
}

fn n(v: &Value) -> String {
    v.as_i64().unwrap_or_default().to_string()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_owned()
}

fn print_report(r: &Value) {
    let totals = &r["totals"];
    let whose = match r["key_id"].as_str() {
        Some(id) => format!("Key {id}"),
        None => "Organization".to_owned(),
    };
    println!(
        "{whose}, {} to {} by {}: {} requests, {} valid, {} refused.",
        text(&r["from"]),
        text(&r["to"]),
        text(&r["granularity"]),
        n(&totals["requests"]),
        n(&totals["valid"]),
        n(&totals["refused"]),
    );
    if let Some(codes) = totals["by_code"].as_object().filter(|c| !c.is_empty()) {
        println!();
        let rows: Vec<Vec<String>> = codes.iter().map(|(c, v)| vec![c.clone(), n(v)]).collect();
        print_table(&["CODE", "REQUESTS"], &rows);
    }
    if let Some(keys) = r["keys"].as_array().filter(|k| !k.is_empty()) {
        println!();
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                vec![
                    text(&k["key_id"]),
                    format!("{}••••", text(&k["prefix"])),
                    n(&k["requests"]),
                    n(&k["valid"]),
                    n(&k["refused"]),
                    text(&k["last_used_at"]),
                ]
            })
            .collect();
        print_table(
            &["KEY", "PREFIX", "REQUESTS", "VALID", "REFUSED", "LAST USED"],
            &rows,
        );
    }
    let series = r["series"].as_array().cloned().unwrap_or_default();
    let used: Vec<&Value> = series
        .iter()
        .filter(|p| p["requests"].as_i64().unwrap_or_default() > 0)
        .collect();
    if !used.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = used
            .iter()
            .map(|p| {
                vec![
                    text(&p["start"]),
                    n(&p["requests"]),
                    n(&p["valid"]),
                    n(&p["refused"]),
                ]
            })
            .collect();
        print_table(&["START", "REQUESTS", "VALID", "REFUSED"], &rows);
    }
    let empty = series.len() - used.len();
    if empty > 0 {
        println!("({empty} of {} buckets had no requests)", series.len());
    }
}
