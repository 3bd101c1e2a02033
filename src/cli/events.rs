//! `keyward events`: the organization's security events, through a running server.

use clap::Args;
use serde_json::Value;

use super::client::Client;
use super::{ClientArgs, table};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// auth_failures, new_ip, usage_spike, grace_period_use or key_exposed.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events about this key (key_...).
    #[arg(long)]
    pub key: Option<String>,
    /// 1 to 100.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The next page: the cursor printed under the page before.
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: EventsArgs) -> anyhow::Result<i32> {
    let c = Client::new(&args.client)?;
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(t) = args.kind {
        query.push(("type", t));
    }
    if let Some(k) = args.key {
        query.push(("key_id", k));
    }
    if let Some(cursor) = args.cursor {
        query.push(("cursor", cursor));
    }
    let page = c.get_query("/v1/security-events", &query).await?;
    if args.client.json {
        table::print_json(&page);
    } else {
        print_events(&page);
    }
    Ok(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_events(page: &Value) {
    let empty = Vec::new();
    let events = page["data"].as_array().unwrap_or(&empty);
    if events.is_empty() {
        println!("No security events.");
        return;
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let key = match e["prefix"].as_str() {
                Some(p) => format!("{p}••••"),
                None => "-".into(),
            };
            vec![
                text(&e["created_at"]),
                text(&e["severity"]),
                text(&e["type"]),
                key,
                text(&e["ip"]),
                text(&e["count"]),
                text(&e["detail"]),
            ]
        })
        .collect();
    table::print_table(
        &[
            "CREATED", "SEVERITY", "TYPE", "KEY", "IP", "COUNT", "DETAIL",
        ],
        &rows,
    );
    if let Some(next) = page["next_cursor"].as_str() {
        println!();
        println!("More: --cursor {next}");
    }
}
