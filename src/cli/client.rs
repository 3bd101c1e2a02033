//! A small HTTP client for the management API.

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::Value;

use super::ClientArgs;

pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// Escapes an id for use as one path segment.
pub fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let key = args
            .api_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .context("KEYWARD_API_KEY is not set: pass a management key with --api-key or the KEYWARD_API_KEY variable")?;
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("KEYWARD_URL must start with http:// or https:// (got '{base}')");
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("keyward-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            base,
            key: key.trim().to_owned(),
            http,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let res = req.bearer_auth(&self.key).send().await.with_context(|| {
            format!(
                "cannot reach the Keyward server at {} (is it running? set KEYWARD_URL)",
                self.base
            )
        })?;
        let status = res.status();
        let text = res
            .text()
            .await
            .context("the server's answer was cut off")?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(body);
        }
        let code = body["code"].as_str().unwrap_or("error");
        let detail = body["detail"].as_str().unwrap_or("");
        let mut msg = format!("{} {code}: {detail}", status.as_u16());
        if let Some(errors) = body["errors"].as_array() {
            for e in errors {
                msg.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ));
            }
        }
        bail!(msg)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn get_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}
