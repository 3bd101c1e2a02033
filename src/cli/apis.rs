//! `keyward apis`: the protected APIs and their gateway settings, through a running server.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{self, Client};
use super::{ClientArgs, parse_rate_limit, table};

#[derive(Debug, Subcommand)]
pub enum ApisCommand {
    /// List the organization's APIs.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one API, with its gateway routes.
    Show {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create an API.
    Create {
        #[arg(long)]
        name: String,
        /// Lowercase letters, digits and '-'; it cannot change later.
        #[arg(long)]
        slug: String,
        #[command(flatten)]
        fields: ApiFields,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change an API: only the settings given change; a list given replaces the list.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: ApiFields,
        /// Take the API off the gateway.
        #[arg(long, conflicts_with = "upstream")]
        no_upstream: bool,
        /// Serve the API for any host.
        #[arg(long, conflicts_with = "hosts")]
        no_hosts: bool,
        /// Remove every route: the gateway forwards every path and checks only the key.
        #[arg(long, conflicts_with = "routes")]
        no_routes: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Settings shared by `create` and `update`.
#[derive(Debug, Args)]
pub struct ApiFields {
    /// Prefix of live keys, e.g. tk_live_.
    #[arg(long)]
    live_prefix: Option<String>,
    /// Prefix of test keys, e.g. tk_test_.
    #[arg(long)]
    test_prefix: Option<String>,
    /// A scope of the catalogue, NAME or NAME=DESCRIPTION; repeat for more.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A token type; repeat for more.
    #[arg(long = "token-type")]
    token_types: Vec<String>,
    /// Accept keys in an x-api-key header too (true or false).
    #[arg(long)]
    accept_x_api_key: Option<bool>,
    /// Default rate limit of the API's keys, REQUESTS/SECONDS, e.g. 100/60.
    #[arg(long)]
    rate_limit: Option<String>,
    /// Base URL the gateway forwards verified requests to, e.g. http://127.0.0.1:9000.
    #[arg(long)]
    upstream: Option<String>,
    /// A host name the gateway serves this API for; repeat for more.
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// A gateway route: its path prefix, then any of methods=, scopes= and types= with
    /// comma-separated values, e.g. "/api/v3/stream methods=GET types=realtime"; or the route as
    /// JSON. Repeat for more.
    #[arg(long = "route")]
    routes: Vec<String>,
}

impl ApiFields {
    fn into_body(self, body: &mut Map<String, Value>) -> anyhow::Result<()> {
        if self.live_prefix.is_some() || self.test_prefix.is_some() {
            let mut prefixes = Map::new();
            if let Some(p) = self.live_prefix {
                prefixes.insert("live".into(), p.into());
            }
            if let Some(p) = self.test_prefix {
                prefixes.insert("test".into(), p.into());
            }
            body.insert("key_prefix".into(), prefixes.into());
        }
        if !self.scopes.is_empty() {
            let scopes: Vec<Value> = self
                .scopes
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((name, description)) => json!({"name": name, "description": description}),
                    None => json!({"name": s}),
                })
                .collect();
            body.insert("scopes".into(), scopes.into());
        }
        if !self.token_types.is_empty() {
            body.insert("token_types".into(), self.token_types.into());
        }
        if let Some(x) = self.accept_x_api_key {
            body.insert("accept_x_api_key".into(), x.into());
        }
        if let Some(r) = self.rate_limit {
            body.insert("default_rate_limit".into(), parse_rate_limit(&r)?);
        }
        if let Some(u) = self.upstream {
            body.insert("upstream".into(), u.into());
        }
        if !self.hosts.is_empty() {
            body.insert("hosts".into(), self.hosts.into());
        }
        if !self.routes.is_empty() {
            let routes = self
                .routes
                .iter()
                .map(|r| parse_route(r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            body.insert("routes".into(), routes.into());
        }
        Ok(())
    }
}

/// A `--route`: JSON, or a path prefix followed by `methods=`, `scopes=` and `types=` lists.
fn parse_route(spec: &str) -> anyhow::Result<Value> {
    let spec = spec.trim();
    if spec.starts_with('{') {
        return serde_json::from_str(spec).context("--route: not a JSON object");
    }
    let mut parts = spec.split_whitespace();
    let Some(prefix) = parts.next() else {
        bail!("--route needs a path prefix, e.g. --route \"/api/v3 methods=GET\"");
    };
    let mut route = json!({"path_prefix": prefix});
    for part in parts {
        let (key, values) = part.split_once('=').with_context(|| {
            format!("--route: expected methods=, scopes= or types=, not '{part}'")
        })?;
        let list: Vec<&str> = values.split(',').filter(|v| !v.is_empty()).collect();
        let field = match key {
            "methods" => "methods",
            "scopes" => "required_scopes",
            "types" => "token_types",
            other => bail!("--route: expected methods=, scopes= or types=, not '{other}='"),
        };
        route[field] = list.into();
    }
    Ok(route)
}

pub async fn run(cmd: ApisCommand) -> anyhow::Result<i32> {
    match cmd {
        ApisCommand::List { client } => {
            let c = Client::new(&client)?;
            let list = c.get("/v1/apis").await?;
            if client.json {
                table::print_json(&list);
            } else {
                table::print_api_list(&list);
            }
        }
        ApisCommand::Show { id, client } => {
            let c = Client::new(&client)?;
            let api = c
                .get(&format!("/v1/apis/{}", client::path_segment(&id)))
                .await?;
            show(&api, client.json);
        }
        ApisCommand::Create {
            name,
            slug,
            fields,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut body = Map::new();
            body.insert("name".into(), name.into());
            body.insert("slug".into(), slug.into());
            fields.into_body(&mut body)?;
            let api = c.post("/v1/apis", &body.into()).await?;
            show(&api, client.json);
        }
        ApisCommand::Update {
            id,
            name,
            fields,
            no_upstream,
            no_hosts,
            no_routes,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), n.into());
            }
            fields.into_body(&mut body)?;
            if no_upstream {
                body.insert("upstream".into(), Value::Null);
            }
            if no_hosts {
                body.insert("hosts".into(), json!([]));
            }
            if no_routes {
                body.insert("routes".into(), json!([]));
            }
            if body.is_empty() {
                bail!(
                    "nothing to change: give at least one setting (see keyward apis update --help)"
                );
            }
            let api = c
                .patch(
                    &format!("/v1/apis/{}", client::path_segment(&id)),
                    &body.into(),
                )
                .await?;
            show(&api, client.json);
        }
    }
    Ok(0)
}

fn show(api: &Value, json: bool) {
    if json {
        table::print_json(api);
    } else {
        table::print_api(api);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_a_prefix_and_lists_or_from_json() {
        assert_eq!(
            parse_route("/api/v3/stream methods=GET,HEAD types=realtime scopes=a:read").unwrap(),
            json!({"path_prefix": "/api/v3/stream", "methods": ["GET", "HEAD"],
                   "token_types": ["realtime"], "required_scopes": ["a:read"]})
        );
        assert_eq!(parse_route("/").unwrap(), json!({"path_prefix": "/"}));
        assert_eq!(
            parse_route(r#"{"path_prefix":"/x","methods":["POST"]}"#).unwrap(),
            json!({"path_prefix": "/x", "methods": ["POST"]})
        );
        assert!(parse_route("/x colour=red").is_err());
        assert!(parse_route("  ").is_err());
    }
}
