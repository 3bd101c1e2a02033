//! Named IP ACLs and key groups, and what they resolve to for the keys that name them.
//!
//! A key names its ACLs and groups by id (JSON lists on the key's row). They are resolved when a
//! key is read ([`link_keys`]), so that the verifier caches a key with its effective allowlist,
//! scopes and rate limit, and a verification reads nothing more. Changing an ACL or a group moves
//! the version (`updated_at`) of every key that names it, in the same unit of work: this instance
//! drops those keys from its cache, and other instances, which follow changed keys, do too.

use std::collections::HashMap;
use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{AnyExecutor, Row};

use super::{Result, Store, StoreTx, corrupt, from_json, to_json, unique};
use crate::domain::model::{IpAcl, Key, KeyGroup, Linked, Millis, RateLimit};

const ACL_COLUMNS: &str = "id, org_id, name, entries, created_at, updated_at";
const GROUP_COLUMNS: &str = "id, org_id, api_id, name, scopes, rate_limit, created_at, updated_at";

/// Which list on a key names the ACL or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    IpAcl,
    Group,
}

impl LinkKind {
    fn column(self) -> &'static str {
        match self {
            LinkKind::IpAcl => "ip_acl_ids",
            LinkKind::Group => "group_ids",
        }
    }
}

/// The `LIKE` pattern that finds `id` in a JSON list of ids. Ids are letters, digits and `_`;
/// `_` is escaped, so the pattern matches this id only.
fn in_list_pattern(id: &str) -> String {
    format!(
        "%\"{}\"%",
        id.replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
    )
}

fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    pub async fn list_ip_acls(&self, org_id: &str) -> Result<Vec<IpAcl>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACL_COLUMNS} FROM ip_acls WHERE org_id = $1 ORDER BY LOWER(name), id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(acl_from_row).collect()
    }

    pub async fn get_ip_acl(&self, org_id: &str, id: &str) -> Result<Option<IpAcl>> {
        get_ip_acl(&self.pool, org_id, id).await
    }

    pub async fn list_key_groups(&self, org_id: &str) -> Result<Vec<KeyGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM key_groups WHERE org_id = $1 ORDER BY LOWER(name), id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    pub async fn get_key_group(&self, org_id: &str, id: &str) -> Result<Option<KeyGroup>> {
        get_key_group(&self.pool, org_id, id).await
    }

    /// Live keys (neither revoked nor deleted) that name an ACL or group, by id.
    pub async fn count_keys_linked(
        &self,
        org_id: &str,
        kind: LinkKind,
        id: &str,
        now: Millis,
    ) -> Result<i64> {
        count_linked(&self.pool, org_id, kind, id, now).await
    }

    /// Fills in `linked` of each key from the ACLs and groups it names (of its own organization,
    /// and for groups of its own API). Keys that name none cost no query.
    pub(super) async fn link_keys(&self, keys: &mut [Key]) -> Result<()> {
        let mut acl_ids: Vec<&str> = Vec::new();
        let mut group_ids: Vec<&str> = Vec::new();
        for k in keys.iter() {
            for id in &k.ip_acl_ids {
                if !acl_ids.contains(&id.as_str()) {
                    acl_ids.push(id);
                }
            }
            for id in &k.group_ids {
                if !group_ids.contains(&id.as_str()) {
                    group_ids.push(id);
                }
            }
        }
        if acl_ids.is_empty() && group_ids.is_empty() {
            return Ok(());
        }
        let mut acls: HashMap<String, IpAcl> = HashMap::new();
        if !acl_ids.is_empty() {
            let sql = format!(
                "SELECT {ACL_COLUMNS} FROM ip_acls WHERE id IN ({})",
                params(1, acl_ids.len())
            );
            let mut q = sqlx::query(&sql);
            for id in &acl_ids {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let acl = acl_from_row(&row)?;
                acls.insert(acl.id.clone(), acl);
            }
        }
        let mut groups: HashMap<String, KeyGroup> = HashMap::new();
        if !group_ids.is_empty() {
            let sql = format!(
                "SELECT {GROUP_COLUMNS} FROM key_groups WHERE id IN ({})",
                params(1, group_ids.len())
            );
            let mut q = sqlx::query(&sql);
            for id in &group_ids {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let g = group_from_row(&row)?;
                groups.insert(g.id.clone(), g);
            }
        }
        for k in keys.iter_mut() {
            let mut linked = Linked::default();
            for id in &k.ip_acl_ids {
                if let Some(acl) = acls.get(id).filter(|a| a.org_id == k.org_id) {
                    for net in &acl.entries {
                        if !linked.acl_nets.contains(net) {
                            linked.acl_nets.push(*net);
                        }
                    }
                }
            }
            for id in &k.group_ids {
                let Some(g) = groups
                    .get(id)
                    .filter(|g| g.org_id == k.org_id && g.api_id == k.api_id)
                else {
                    continue;
                };
                for s in &g.scopes {
                    if !k.scopes.contains(s) && !linked.group_scopes.contains(s) {
                        linked.group_scopes.push(s.clone());
                    }
                }
                if linked.group_rate_limit.is_none() {
                    linked.group_rate_limit = g.rate_limit;
                }
            }
            k.linked = linked;
        }
        Ok(())
    }
}

impl StoreTx {
    /// An ACL as this unit of work sees it.
    pub async fn get_ip_acl(&mut self, org_id: &str, id: &str) -> Result<Option<IpAcl>> {
        get_ip_acl(self.conn(), org_id, id).await
    }

    /// A group as this unit of work sees it.
    pub async fn get_key_group(&mut self, org_id: &str, id: &str) -> Result<Option<KeyGroup>> {
        get_key_group(self.conn(), org_id, id).await
    }

    /// Stores a new ACL; a name the organization already uses is a conflict.
    pub async fn create_ip_acl(&mut self, acl: &IpAcl) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO ip_acls ({ACL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&acl.id)
        .bind(&acl.org_id)
        .bind(&acl.name)
        .bind(to_json(&nets(&acl.entries)))
        .bind(acl.created_at)
        .bind(acl.updated_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique(e, "an IP ACL with this name"))?;
        Ok(())
    }

    /// Writes an ACL's name and entries.
    pub async fn update_ip_acl(&mut self, acl: &IpAcl) -> Result<()> {
        sqlx::query(
            "UPDATE ip_acls SET name = $1, entries = $2, updated_at = $3 WHERE id = $4 AND org_id = $5",
        )
        .bind(&acl.name)
        .bind(to_json(&nets(&acl.entries)))
        .bind(acl.updated_at)
        .bind(&acl.id)
        .bind(&acl.org_id)
        .execute(self.conn())
        .await
        .map_err(|e| unique(e, "an IP ACL with this name"))?;
        Ok(())
    }

    pub async fn delete_ip_acl(&mut self, org_id: &str, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM ip_acls WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Stores a new group; a name the organization already uses is a conflict.
    pub async fn create_key_group(&mut self, g: &KeyGroup) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO key_groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&g.id)
        .bind(&g.org_id)
        .bind(&g.api_id)
        .bind(&g.name)
        .bind(to_json(&g.scopes))
        .bind(g.rate_limit.map(|r| to_json(&r)))
        .bind(g.created_at)
        .bind(g.updated_at)
        .execute(self.conn())
        .await
        .map_err(|e| unique(e, "a key group with this name"))?;
        Ok(())
    }

    /// Writes a group's name, scopes and rate limit.
    pub async fn update_key_group(&mut self, g: &KeyGroup) -> Result<()> {
        sqlx::query(
            "UPDATE key_groups SET name = $1, scopes = $2, rate_limit = $3, updated_at = $4 \
             WHERE id = $5 AND org_id = $6",
        )
        .bind(&g.name)
        .bind(to_json(&g.scopes))
        .bind(g.rate_limit.map(|r| to_json(&r)))
        .bind(g.updated_at)
        .bind(&g.id)
        .bind(&g.org_id)
        .execute(self.conn())
        .await
        .map_err(|e| unique(e, "a key group with this name"))?;
        Ok(())
    }

    pub async fn delete_key_group(&mut self, org_id: &str, id: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM key_groups WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// [`Store::count_keys_linked`] as this unit of work sees it.
    pub async fn count_keys_linked(
        &mut self,
        org_id: &str,
        kind: LinkKind,
        id: &str,
        now: Millis,
    ) -> Result<i64> {
        count_linked(self.conn(), org_id, kind, id, now).await
    }

    /// Moves the version of every key that names the ACL or group forward, so that every
    /// instance reads them again; returns their ids, for this instance to drop once committed.
    pub async fn touch_keys_linked(
        &mut self,
        org_id: &str,
        kind: LinkKind,
        id: &str,
        now: Millis,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(&format!(
            "UPDATE keys SET updated_at = CASE WHEN updated_at < $1 THEN $1 ELSE updated_at + 1 END \
             WHERE org_id = $2 AND {} LIKE $3 ESCAPE '\\' RETURNING id",
            kind.column()
        ))
        .bind(now)
        .bind(org_id)
        .bind(in_list_pattern(id))
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }
}

async fn count_linked<'e>(
    db: impl AnyExecutor<'e>,
    org_id: &str,
    kind: LinkKind,
    id: &str,
    now: Millis,
) -> Result<i64> {
    let row = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM keys WHERE org_id = $1 AND {} LIKE $2 ESCAPE '\\' \
         AND deleted_at IS NULL AND (revoked_at IS NULL OR revoked_at > $3)",
        kind.column()
    ))
    .bind(org_id)
    .bind(in_list_pattern(id))
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(row.try_get("n")?)
}

async fn get_ip_acl<'e>(db: impl AnyExecutor<'e>, org_id: &str, id: &str) -> Result<Option<IpAcl>> {
    let row = sqlx::query(&format!(
        "SELECT {ACL_COLUMNS} FROM ip_acls WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    row.map(|r| acl_from_row(&r)).transpose()
}

async fn get_key_group<'e>(
    db: impl AnyExecutor<'e>,
    org_id: &str,
    id: &str,
) -> Result<Option<KeyGroup>> {
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM key_groups WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    row.map(|r| group_from_row(&r)).transpose()
}

fn nets(entries: &[ipnet::IpNet]) -> Vec<String> {
    entries.iter().map(|n| n.to_string()).collect()
}

fn acl_from_row(r: &AnyRow) -> Result<IpAcl> {
    let entries: Vec<String> = from_json(&r.try_get::<String, _>("entries")?)?;
    Ok(IpAcl {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        entries: entries
            .iter()
            .map(|s| ipnet::IpNet::from_str(s).map_err(|_| corrupt("entries", s)))
            .collect::<Result<_>>()?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn group_from_row(r: &AnyRow) -> Result<KeyGroup> {
    let rate_limit: Option<String> = r.try_get("rate_limit")?;
    Ok(KeyGroup {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        api_id: r.try_get("api_id")?,
        name: r.try_get("name")?,
        scopes: from_json(&r.try_get::<String, _>("scopes")?)?,
        rate_limit: rate_limit.map(|s| from_json::<RateLimit>(&s)).transpose()?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}
