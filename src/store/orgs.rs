//! Organizations: plan, API access, billing status and key policies.

use sqlx::any::AnyRow;
use sqlx::{AnyExecutor, Row};

use super::{Result, Store, StoreTx, apis, from_json, keys, to_json, users};
use crate::domain::model::{Api, Key, Org, User};

const ORG_COLUMNS: &str = "id, name, plan, api_access, billing_status, policies, created_at";

impl Store {
    pub async fn count_orgs(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM orgs")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Creates an organization with its first owner, its APIs and a first key, atomically.
    pub async fn create_org(&self, org: &Org, owner: &User, apis: &[Api], key: &Key) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.create_org(org, owner, apis, key).await?;
        tx.commit().await
    }

    /// The organization created first: the operator's own, where events that belong to no
    /// organization are recorded.
    pub async fn first_org_id(&self) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM orgs ORDER BY created_at, id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
    }

    pub async fn get_org(&self, id: &str) -> Result<Option<Org>> {
        get_org(&self.pool, id).await
    }

    pub async fn update_org(&self, org: &Org) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.update_org(org).await?;
        tx.commit().await
    }
}

impl StoreTx {
    /// Stores an organization with its first owner, its APIs and a first key.
    pub async fn create_org(
        &mut self,
        org: &Org,
        owner: &User,
        apis: &[Api],
        key: &Key,
    ) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO orgs ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&org.id)
        .bind(&org.name)
        .bind(&org.plan)
        .bind(i64::from(org.api_access))
        .bind(&org.billing_status)
        .bind(to_json(&org.policies))
        .bind(org.created_at)
        .execute(self.conn())
        .await?;
        users::insert_user(self.conn(), owner, None).await?;
        for api in apis {
            apis::insert_api(self.conn(), api).await?;
        }
        keys::insert_key(self.conn(), key).await
    }

    /// The organization as this unit of work sees it: after [`Store::begin_for_org`], as the
    /// last change of the organization left it.
    pub async fn get_org(&mut self, id: &str) -> Result<Option<Org>> {
        get_org(self.conn(), id).await
    }

    pub async fn update_org(&mut self, org: &Org) -> Result<()> {
        sqlx::query(
            "UPDATE orgs SET name = $1, plan = $2, api_access = $3, billing_status = $4, policies = $5 WHERE id = $6",
        )
        .bind(&org.name)
        .bind(&org.plan)
        .bind(i64::from(org.api_access))
        .bind(&org.billing_status)
        .bind(to_json(&org.policies))
        .bind(&org.id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

async fn get_org<'e>(db: impl AnyExecutor<'e>, id: &str) -> Result<Option<Org>> {
    let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(|r| org_from_row(&r)).transpose()
}

fn org_from_row(r: &AnyRow) -> Result<Org> {
    Ok(Org {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        plan: r.try_get("plan")?,
        api_access: r.try_get::<i64, _>("api_access")? != 0,
        billing_status: r.try_get("billing_status")?,
        policies: from_json(&r.try_get::<String, _>("policies")?)?,
        created_at: r.try_get("created_at")?,
    })
}
