//! `keyward webhooks`: an organization's webhook endpoints and their deliveries, through a
//! running server.

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Map, Value};

use super::client::{self, Client};
use super::{ClientArgs, table};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List the organization's endpoints.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create an endpoint and print its signing secret once.
    Create {
        /// https:// (or http://) URL the events are posted to (`--url` names the Keyward server).
        #[arg(long)]
        endpoint: String,
        /// An event to send, e.g. key.revoked; repeat for more.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change an endpoint: only what is given changes; events given replace the list.
    Update {
        id: String,
        /// A new URL for the endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// true to send events, false to pause the endpoint.
        #[arg(long)]
        enabled: Option<bool>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete an endpoint and the messages it has not received yet.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The latest deliveries of an endpoint, newest first.
    Deliveries {
        id: String,
        /// 1 to 100.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send a message again now (with the same webhook-id).
    Redeliver {
        id: String,
        /// The message's id (msg_...), from `deliveries`.
        message: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn run(cmd: WebhooksCommand) -> anyhow::Result<i32> {
    match cmd {
        WebhooksCommand::List { client } => {
            let c = Client::new(&client)?;
            let list = c.get("/v1/webhooks").await?;
            if client.json {
                table::print_json(&list);
            } else {
                let rows: Vec<Vec<String>> = list["data"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|w| {
                        vec![
                            text(&w["id"]),
                            text(&w["url"]),
                            if w["enabled"] == true { "yes" } else { "no" }.into(),
                            text(&w["events"]),
                        ]
                    })
                    .collect();
                table::print_table(&["ID", "URL", "ENABLED", "EVENTS"], &rows);
            }
        }
        WebhooksCommand::Create {
            endpoint: url,
            events,
            description,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut body = Map::new();
            body.insert("url".into(), url.into());
            body.insert("events".into(), events.into());
            if let Some(d) = description {
                body.insert("description".into(), d.into());
            }
            let hook = c.post("/v1/webhooks", &body.into()).await?;
            if client.json {
                table::print_json(&hook);
            } else {
                println!("{}", text(&hook["secret"]));
                eprintln!(
                    "Endpoint {} created. The signing secret above is shown once: store it now.",
                    text(&hook["id"])
                );
            }
        }
        WebhooksCommand::Update {
            id,
            endpoint: url,
            events,
            description,
            enabled,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut body = Map::new();
            if let Some(u) = url {
                body.insert("url".into(), u.into());
            }
            if !events.is_empty() {
                body.insert("events".into(), events.into());
            }
            if let Some(d) = description {
                body.insert("description".into(), d.into());
            }
            if let Some(e) = enabled {
                body.insert("enabled".into(), e.into());
            }
            if body.is_empty() {
                bail!(
                    "nothing to change: give at least one setting (see keyward webhooks update --help)"
                );
            }
            let hook = c
                .patch(
                    &format!("/v1/webhooks/{}", client::path_segment(&id)),
                    &body.into(),
                )
                .await?;
            table::print_json(&hook);
        }
        WebhooksCommand::Delete { id, client } => {
            let c = Client::new(&client)?;
            c.delete(&format!("/v1/webhooks/{}", client::path_segment(&id)))
                .await?;
            eprintln!("Endpoint {id} deleted.");
        }
        WebhooksCommand::Deliveries { id, limit, client } => {
            let c = Client::new(&client)?;
            let list = c
                .get_query(
                    &format!("/v1/webhooks/{}/deliveries", client::path_segment(&id)),
                    &[("limit", limit.to_string())],
                )
                .await?;
            if client.json {
                table::print_json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|d| {
                        vec![
                            text(&d["id"]),
                            text(&d["event"]),
                            text(&d["status"]),
                            text(&d["attempts"]),
                            text(&d["response_status"]),
                            text(&d["next_attempt_at"]),
                            text(&d["created_at"]),
                        ]
                    })
                    .collect();
                table::print_table(
                    &[
                        "ID", "EVENT", "STATUS", "ATTEMPTS", "LAST", "NEXT", "CREATED",
                    ],
                    &rows,
                );
            }
        }
        WebhooksCommand::Redeliver {
            id,
            message,
            client,
        } => {
            let c = Client::new(&client)?;
            let d = c
                .post(
                    &format!(
                        "/v1/webhooks/{}/deliveries/{}/redeliver",
                        client::path_segment(&id),
                        client::path_segment(&message)
                    ),
                    &Value::Object(Map::new()),
                )
                .await?;
            if client.json {
                table::print_json(&d);
            } else {
                eprintln!("Message {} queued again.", text(&d["id"]));
            }
        }
    }
    Ok(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
