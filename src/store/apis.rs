//! Protected APIs: prefixes, scope catalogue, token types, gateway routes.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Result, Store, StoreTx, from_json, to_json, unique};
use crate::domain::model::{Api, RateLimit};

const API_COLUMNS: &str = "id, org_id, name, slug, prefix_live, prefix_test, scopes, token_types, accept_x_api_key, \
     default_rate_limit, upstream, hosts, routes, created_at";

impl Store {
    pub async fn create_api(&self, api: &Api) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.create_api(api).await?;
        tx.commit().await
    }

    pub async fn update_api(&self, api: &Api) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.update_api(api).await?;
        tx.commit().await
    }

    pub async fn get_api(&self, id: &str) -> Result<Option<Api>> {
        let row = sqlx::query(&format!("SELECT {API_COLUMNS} FROM apis WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| api_from_row(&r)).transpose()
    }

    pub async fn get_api_by_slug(&self, org_id: &str, slug: &str) -> Result<Option<Api>> {
        let row = sqlx::query(&format!(
            "SELECT {API_COLUMNS} FROM apis WHERE org_id = $1 AND slug = $2"
        ))
        .bind(org_id)
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| api_from_row(&r)).transpose()
    }

    pub async fn list_apis(&self, org_id: &str) -> Result<Vec<Api>> {
        let rows = sqlx::query(&format!(
            "SELECT {API_COLUMNS} FROM apis WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_from_row).collect()
    }

    /// Every API with an upstream, for the gateway.
    pub async fn list_gateway_apis(&self) -> Result<Vec<Api>> {
        let rows = sqlx::query(&format!(
            "SELECT {API_COLUMNS} FROM apis WHERE upstream IS NOT NULL ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_from_row).collect()
    }
}

impl StoreTx {
    /// Stores a new API; a slug the organization already uses is a conflict.
    pub async fn create_api(&mut self, api: &Api) -> Result<()> {
        insert_api(self.conn(), api).await
    }

    pub async fn update_api(&mut self, api: &Api) -> Result<()> {
        sqlx::query(
            "UPDATE apis SET name = $1, prefix_live = $2, prefix_test = $3, scopes = $4, token_types = $5, \
             accept_x_api_key = $6, default_rate_limit = $7, upstream = $8, hosts = $9, routes = $10 WHERE id = $11 AND org_id = $12",
        )
        .bind(&api.name)
        .bind(&api.prefix_live)
        .bind(&api.prefix_test)
        .bind(to_json(&api.scopes))
        .bind(to_json(&api.token_types))
        .bind(i64::from(api.accept_x_api_key))
        .bind(api.default_rate_limit.map(|r| to_json(&r)))
        .bind(&api.upstream)
        .bind(to_json(&api.hosts))
        .bind(to_json(&api.routes))
        .bind(&api.id)
        .bind(&api.org_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

pub(super) async fn insert_api(conn: &mut AnyConnection, a: &Api) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO apis ({API_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&a.id)
    .bind(&a.org_id)
    .bind(&a.name)
    .bind(&a.slug)
    .bind(&a.prefix_live)
    .bind(&a.prefix_test)
    .bind(to_json(&a.scopes))
    .bind(to_json(&a.token_types))
    .bind(i64::from(a.accept_x_api_key))
    .bind(a.default_rate_limit.map(|r| to_json(&r)))
    .bind(&a.upstream)
    .bind(to_json(&a.hosts))
    .bind(to_json(&a.routes))
    .bind(a.created_at)
    .execute(conn)
    .await
    .map_err(|e| unique(e, "an API with this slug"))?;
    Ok(())
}

fn api_from_row(r: &AnyRow) -> Result<Api> {
    let rl: Option<String> = r.try_get("default_rate_limit")?;
    Ok(Api {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        slug: r.try_get("slug")?,
        prefix_live: r.try_get("prefix_live")?,
        prefix_test: r.try_get("prefix_test")?,
        scopes: from_json(&r.try_get::<String, _>("scopes")?)?,
        token_types: from_json(&r.try_get::<String, _>("token_types")?)?,
        accept_x_api_key: r.try_get::<i64, _>("accept_x_api_key")? != 0,
        default_rate_limit: rl.map(|s| from_json::<RateLimit>(&s)).transpose()?,
        upstream: r.try_get("upstream")?,
        hosts: from_json(&r.try_get::<String, _>("hosts")?)?,
        routes: from_json(&r.try_get::<String, _>("routes")?)?,
        created_at: r.try_get("created_at")?,
    })
}
