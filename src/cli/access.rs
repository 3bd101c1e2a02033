//! `keyward acls` and `keyward groups`: named IP ACLs and key groups, through a running server.

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Map, Value};

use super::client::{self, Client};
use super::{ClientArgs, parse_rate_limit, table};

#[derive(Debug, Subcommand)]
pub enum AclsCommand {
    /// List the organization's IP ACLs.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create an IP ACL.
    Create {
        #[arg(long)]
        name: String,
        /// An IP address or CIDR block; repeat for more (at least one).
        #[arg(long = "entry", required = true)]
        entries: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change an IP ACL; every key that uses it follows at once. Entries given replace the list.
    Edit {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "entry")]
        entries: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete an IP ACL no key uses.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List the organization's key groups.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a key group for one API.
    Create {
        #[arg(long)]
        name: String,
        /// The API id whose keys may join.
        #[arg(long)]
        api: String,
        /// A scope of the API's catalogue; repeat for more.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// REQUESTS/SECONDS, e.g. 100/60, for member keys without their own.
        #[arg(long)]
        rate_limit: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a key group; every member key follows at once. Scopes given replace the list.
    Edit {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Remove every scope.
        #[arg(long, conflicts_with = "scopes")]
        no_scopes: bool,
        #[arg(long)]
        rate_limit: Option<String>,
        /// Remove the group's rate limit.
        #[arg(long, conflicts_with = "rate_limit")]
        no_rate_limit: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a key group that has no keys.
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn acls(cmd: AclsCommand) -> anyhow::Result<i32> {
    match cmd {
        AclsCommand::List { client } => {
            let list = Client::new(&client)?.get("/v1/ip-acls").await?;
            if client.json {
                table::print_json(&list);
            } else {
                print_acls(&list);
            }
        }
        AclsCommand::Create {
            name,
            entries,
            client,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), name.into());
            body.insert("entries".into(), entries.into());
            let acl = Client::new(&client)?
                .post("/v1/ip-acls", &body.into())
                .await?;
            show_acl(&acl, client.json);
        }
        AclsCommand::Edit {
            id,
            name,
            entries,
            client,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), n.into());
            }
            if !entries.is_empty() {
                body.insert("entries".into(), entries.into());
            }
            if body.is_empty() {
                bail!("nothing to change: give --name or --entry");
            }
            let acl = Client::new(&client)?
                .patch(
                    &format!("/v1/ip-acls/{}", client::path_segment(&id)),
                    &body.into(),
                )
                .await?;
            show_acl(&acl, client.json);
        }
        AclsCommand::Delete { id, client } => {
            Client::new(&client)?
                .delete(&format!("/v1/ip-acls/{}", client::path_segment(&id)))
                .await?;
            if !client.json {
                println!("Deleted {id}.");
            }
        }
    }
    Ok(0)
}

pub async fn groups(cmd: GroupsCommand) -> anyhow::Result<i32> {
    match cmd {
        GroupsCommand::List { client } => {
            let list = Client::new(&client)?.get("/v1/key-groups").await?;
            if client.json {
                table::print_json(&list);
            } else {
                print_groups(&list);
            }
        }
        GroupsCommand::Create {
            name,
            api,
            scopes,
            rate_limit,
            client,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), name.into());
            body.insert("api_id".into(), api.into());
            body.insert("scopes".into(), scopes.into());
            if let Some(r) = rate_limit {
                body.insert("rate_limit".into(), parse_rate_limit(&r)?);
            }
            let group = Client::new(&client)?
                .post("/v1/key-groups", &body.into())
                .await?;
            show_group(&group, client.json);
        }
        GroupsCommand::Edit {
            id,
            name,
            scopes,
            no_scopes,
            rate_limit,
            no_rate_limit,
            client,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), n.into());
            }
            if !scopes.is_empty() || no_scopes {
                body.insert("scopes".into(), scopes.into());
            }
            if let Some(r) = rate_limit {
                body.insert("rate_limit".into(), parse_rate_limit(&r)?);
            }
            if no_rate_limit {
                body.insert("rate_limit".into(), Value::Null);
            }
            if body.is_empty() {
                bail!(
                    "nothing to change: give --name, --scope, --no-scopes, --rate-limit or --no-rate-limit"
                );
            }
            let group = Client::new(&client)?
                .patch(
                    &format!("/v1/key-groups/{}", client::path_segment(&id)),
                    &body.into(),
                )
                .await?;
            show_group(&group, client.json);
        }
        GroupsCommand::Delete { id, client } => {
            Client::new(&client)?
                .delete(&format!("/v1/key-groups/{}", client::path_segment(&id)))
                .await?;
            if !client.json {
                println!("Deleted {id}.");
            }
        }
    }
    Ok(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(o) => match (o.get("requests"), o.get("per_seconds")) {
            (Some(r), Some(p)) => format!("{r}/{p}s"),
            _ => v.to_string(),
        },
        other => other.to_string(),
    }
}

fn rows(list: &Value, cells: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list["data"]
        .as_array()
        .map(|items| items.iter().map(cells).collect())
        .unwrap_or_default()
}

fn print_acls(list: &Value) {
    let rows = rows(list, |a| {
        vec![text(&a["id"]), text(&a["name"]), text(&a["entries"])]
    });
    table::print_table(&["ID", "NAME", "ENTRIES"], &rows);
}

fn print_groups(list: &Value) {
    let rows = rows(list, |g| {
        vec![
            text(&g["id"]),
            text(&g["name"]),
            text(&g["api_id"]),
            text(&g["scopes"]),
            text(&g["rate_limit"]),
        ]
    });
    table::print_table(&["ID", "NAME", "API", "SCOPES", "RATE LIMIT"], &rows);
}

fn show_acl(acl: &Value, json: bool) {
    if json {
        table::print_json(acl);
    } else {
        print_acls(&serde_json::json!({"data": [acl]}));
    }
}

fn show_group(group: &Value, json: bool) {
    if json {
        table::print_json(group);
    } else {
        print_groups(&serde_json::json!({"data": [group]}));
    }
}
