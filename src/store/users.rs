//! Members of an organization.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyExecutor, Row};

use super::{Result, Store, StoreTx, corrupt, unique};
use crate::domain::model::{Millis, Role, User, UserKind, UserStatus};

const USER_COLUMNS: &str = "id, org_id, email, name, role, status, kind, created_at";

impl Store {
    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        get_user(&self.pool, id).await
    }

    pub async fn get_user_in_org(&self, org_id: &str, id: &str) -> Result<Option<User>> {
        Ok(self.get_user(id).await?.filter(|u| u.org_id == org_id))
    }

    /// A person and their password hash, for sign-in. Service accounts have no email and are
    /// never found here.
    pub async fn get_user_by_email(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1 AND status <> 'deleted' \
             AND kind = 'person'"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((user_from_row(&r)?, r.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    pub async fn list_users(&self, org_id: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND status <> 'deleted' ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Active members of an organization who have not set a password yet, each with the end of
    /// their latest unused sign-in link (`None`: no link left).
    pub async fn members_without_password(
        &self,
        org_id: &str,
    ) -> Result<Vec<(String, Option<Millis>)>> {
        let rows = sqlx::query(
            "SELECT u.id AS id, MAX(t.expires_at) AS link_expires_at FROM users u \
             LEFT JOIN setup_tokens t ON t.user_id = u.id AND t.used_at IS NULL \
             WHERE u.org_id = $1 AND u.status = 'active' AND u.password_hash IS NULL AND u.kind = 'person' \
             GROUP BY u.id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("link_expires_at")?)))
            .collect()
    }

    pub async fn create_user(&self, user: &User, password_hash: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.create_user(user, password_hash).await?;
        tx.commit().await
    }

    pub async fn update_user(&self, user: &User) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.update_user(user).await?;
        tx.commit().await
    }

    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_password(user_id, password_hash).await?;
        tx.commit().await
    }

    /// Active owners of an organization.
    pub async fn count_active_owners(&self, org_id: &str) -> Result<i64> {
        count_active_owners(&self.pool, org_id).await
    }
}

impl StoreTx {
    /// A member as this unit of work sees it, in their organization or not at all.
    pub async fn get_user_in_org(&mut self, org_id: &str, id: &str) -> Result<Option<User>> {
        Ok(get_user(self.conn(), id)
            .await?
            .filter(|u| u.org_id == org_id))
    }

    pub async fn create_user(&mut self, user: &User, password_hash: Option<&str>) -> Result<()> {
        insert_user(self.conn(), user, password_hash).await
    }

    /// Writes a member's email, name, role and status; another member's email is a conflict.
    pub async fn update_user(&mut self, user: &User) -> Result<()> {
        sqlx::query("UPDATE users SET email = $1, name = $2, role = $3, status = $4 WHERE id = $5 AND org_id = $6")
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(user.status.as_str())
            .bind(&user.id)
            .bind(&user.org_id)
            .execute(self.conn())
            .await
            .map_err(|e| unique(e, "a member with this email"))?;
        Ok(())
    }

    pub async fn set_password(&mut self, user_id: &str, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Active owners of an organization, as this unit of work sees them.
    pub async fn count_active_owners(&mut self, org_id: &str) -> Result<i64> {
        count_active_owners(self.conn(), org_id).await
    }
}

async fn get_user<'e>(db: impl AnyExecutor<'e>, id: &str) -> Result<Option<User>> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.map(|r| user_from_row(&r)).transpose()
}

async fn count_active_owners<'e>(db: impl AnyExecutor<'e>, org_id: &str) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM users WHERE org_id = $1 AND role = 'owner' AND status = 'active'",
    )
    .bind(org_id)
    .fetch_one(db)
    .await?;
    Ok(row.try_get("n")?)
}

pub(super) async fn insert_user(
    conn: &mut AnyConnection,
    u: &User,
    password_hash: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, email, name, role, status, password_hash, created_at, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&u.id)
    .bind(&u.org_id)
    .bind(&u.email)
    .bind(&u.name)
    .bind(u.role.as_str())
    .bind(u.status.as_str())
    .bind(password_hash)
    .bind(u.created_at)
    .bind(u.kind.as_str())
    .execute(conn)
    .await
    .map_err(|e| unique(e, "a member with this email"))?;
    Ok(())
}

fn user_from_row(r: &AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    let status: String = r.try_get("status")?;
    let kind: String = r.try_get("kind")?;
    Ok(User {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        status: UserStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        kind: UserKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        created_at: r.try_get("created_at")?,
    })
}
