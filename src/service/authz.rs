//! What a caller may do, decided in one place. The operations of this layer check these answers
//! and refuse with the 403 or 409 they name; the dashboard reads the same answers only to decide
//! which controls to show, so that a page offers exactly what the operations would accept.
//!
//! A caller's scopes come from [`Caller::can`] (its role, and its management key's scopes);
//! ownership, the role ladder and the state of a key or member are decided here.

use super::{Caller, Result, ServiceError, Via};
use crate::domain::model::{Api, Key, KeyStatus, Millis, Policies, Role, User, UserStatus};

/// Creating keys, and editing and rotating them (with the ownership rules of [`key_actions`]).
pub const WRITE_KEYS: &str = "keys:write";
/// Revoking and deleting keys.
pub const REMOVE_KEYS: &str = "keys:delete";
/// Revealing the secret of recoverable keys.
pub const REVEAL_KEYS: &str = "keys:reveal";
/// Reading the audit log.
pub const READ_AUDIT: &str = "audit:read";
/// Reading security events: the audit log's scope (contract section 9).
pub const READ_SECURITY_EVENTS: &str = READ_AUDIT;
/// Reading usage counts.
pub const READ_USAGE: &str = "usage:read";
/// Inviting members, changing their roles, disabling and removing them.
pub const MANAGE_MEMBERS: &str = "users:write";
/// Creating and changing protected APIs.
pub const WRITE_APIS: &str = "apis:write";
/// Changing the organization's name, plan, API access and key policies.
pub const UPDATE_ORG: &str = "org:admin";
/// Creating, changing and deleting IP ACLs and key groups (which change many keys at once).
pub const MANAGE_ACCESS: &str = "org:admin";

/// Managing webhook endpoints and their deliveries: the organization's administrators.
pub const MANAGE_WEBHOOKS: &str = "org:admin";

/// What the caller may do in the organization, before any one key, member or API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgActions {
    pub create_keys: bool,
    /// Create keys owned by another member.
    pub create_keys_for_others: bool,
    pub read_audit: bool,
    pub read_security_events: bool,
    pub read_usage: bool,
    /// Invite members (and, subject to [`member_actions`], change them).
    pub manage_members: bool,
    pub create_apis: bool,
    pub update_org: bool,
    /// Create, edit and delete webhook endpoints, read their deliveries, redeliver.
    pub manage_webhooks: bool,
}

pub fn org_actions(caller: &Caller) -> OrgActions {
    OrgActions {
        create_keys: caller.can(WRITE_KEYS),
        create_keys_for_others: caller.can(WRITE_KEYS) && may_create_keys_for_others(caller),
        read_audit: caller.can(READ_AUDIT),
        read_security_events: caller.can(READ_SECURITY_EVENTS),
        read_usage: caller.can(READ_USAGE),
        manage_members: caller.can(MANAGE_MEMBERS),
        create_apis: caller.can(WRITE_APIS),
        update_org: caller.can(UPDATE_ORG),
        manage_webhooks: caller.can(MANAGE_WEBHOOKS),
    }
}

// -------------------------------------------------------------------- keys

/// What the caller may do with one key, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyActions {
    pub edit: bool,
    pub rotate: bool,
    pub revoke: bool,
    pub delete: bool,
    pub reveal: bool,
}

/// What the caller may do with `key`, of `api` and owned by `owner` (when known): its scopes, its
/// ownership of the key, the roles involved, and the key's state.
pub fn key_actions(
    caller: &Caller,
    key: &Key,
    api: Option<&Api>,
    owner: Option<&User>,
    now: Millis,
) -> KeyActions {
    let for_owner = match (api, owner) {
        (Some(api), Some(owner)) => may_act_for_owner(caller, api, owner),
        _ => true,
    };
    let change = caller.can(WRITE_KEYS) && may_change_key(caller, key) && for_owner;
    let remove = caller.can(REMOVE_KEYS) && may_remove_key(caller, key);
    KeyActions {
        edit: change && editable(key, now).is_ok(),
        rotate: change && rotatable(key, now).is_ok(),
        // Revoking a revoked key, or deleting a deleted one, changes nothing: not offered.
        revoke: remove && key.is_live(now),
        delete: remove && key.deleted_at.is_none(),
        reveal: caller.can(REVEAL_KEYS) && for_owner && revealable(key, now).is_ok(),
    }
}

/// Whether the caller's role lets them change (edit, rotate) `key`: admins any key, others only
/// their own.
pub fn may_change_key(caller: &Caller, key: &Key) -> bool {
    caller.user.role.manages_all_keys() || key.owner_id == caller.user.id
}

/// Whether the caller's role lets them revoke or delete `key`: as [`may_change_key`], and also
/// the key's creator, who may take back a key they made for someone else.
pub fn may_remove_key(caller: &Caller, key: &Key) -> bool {
    may_change_key(caller, key) || key.created_by == caller.user.id
}

/// Whether the caller may create keys owned by another member.
pub fn may_create_keys_for_others(caller: &Caller) -> bool {
    caller.user.role.manages_all_keys()
}

/// Whether `member` may be given a new key: a disabled member's keys would not work.
pub fn may_own_keys(member: &User) -> bool {
    member.status == UserStatus::Active
}

/// Whether the caller may create, rotate, reveal or re-scope a key of `api` owned by `owner`. A
/// management key acts with its owner's role, so one owned by a member above the caller would let
/// an admin act as an owner; keys of other APIs carry no role.
pub fn may_act_for_owner(caller: &Caller, api: &Api, owner: &User) -> bool {
    !api.is_management() || owner.role <= caller.user.role
}

/// Whether the caller may grant `scope` on a key of `api`: on the management API only scopes they
/// hold themselves, since the key would act with them.
pub fn may_grant_scope(caller: &Caller, api: &Api, scope: &str) -> bool {
    !api.is_management() || caller.can(scope)
}

/// Whether `key`'s state lets it be edited, or the 409 saying why not.
pub fn editable(key: &Key, now: Millis) -> Result<()> {
    if key.is_live(now) {
        Ok(())
    } else {
        Err(conflict("A revoked or deleted key cannot be edited."))
    }
}

/// Whether `key`'s state lets it be rotated, or the 409 saying why not.
pub fn rotatable(key: &Key, now: Millis) -> Result<()> {
    match key.status(now) {
        KeyStatus::Revoked | KeyStatus::Deleted => {
            return Err(conflict("A revoked or deleted key cannot be rotated."));
        }
        KeyStatus::Expired => {
            return Err(conflict(
                "An expired key cannot be rotated: its replacement would be expired too. Create a new key.",
            ));
        }
        KeyStatus::Active | KeyStatus::Disabled => {}
    }
    if let Some(next) = &key.replaced_by {
        return Err(ServiceError::Conflict(format!(
            "This key was already rotated; rotate its replacement {next} instead."
        )));
    }
    Ok(())
}

/// Whether `key`'s state lets its secret be revealed, or the 409 saying why not.
pub fn revealable(key: &Key, now: Millis) -> Result<()> {
    if !key.recoverable {
        return Err(conflict(
            "This key is not recoverable: its secret was shown once, at creation. Rotate it to get a new one.",
        ));
    }
    if !key.is_live(now) {
        return Err(conflict("A revoked or deleted key cannot be revealed."));
    }
    Ok(())
}

/// Whether a new key may be recoverable, or why not (a message for its `recoverable` field): the
/// organization's policy must allow it, and the server must be able to encrypt it.
pub fn recoverable_keys(policies: &Policies, can_encrypt: bool) -> Result<(), &'static str> {
    if !policies.recoverable_keys {
        Err("the organization's policy does not allow recoverable keys")
    } else if !can_encrypt {
        Err("recoverable keys need KEYWARD_ENCRYPTION_KEY (64 hex characters) on the server")
    } else {
        Ok(())
    }
}

/// Whether the policy may be switched to allow recoverable keys, or why not: only where the
/// server can encrypt them.
pub fn recoverable_policy(can_encrypt: bool) -> Result<(), &'static str> {
    if can_encrypt {
        Ok(())
    } else {
        Err("recoverable keys need KEYWARD_ENCRYPTION_KEY (64 hex characters) on the server")
    }
}

fn conflict(why: &str) -> ServiceError {
    ServiceError::Conflict(why.to_owned())
}

// -------------------------------------------------------------------- members

/// What the caller may do with one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberActions {
    pub change_role: bool,
    pub new_sign_in_link: bool,
    pub disable: bool,
    pub enable: bool,
    pub remove: bool,
}

impl MemberActions {
    /// Whether any action is open.
    pub fn any(&self) -> bool {
        self.change_role || self.new_sign_in_link || self.disable || self.enable || self.remove
    }
}

pub fn member_actions(caller: &Caller, member: &User) -> MemberActions {
    let manage = may_manage_member(caller, member);
    let present = member.status != UserStatus::Deleted;
    MemberActions {
        change_role: manage && present,
        new_sign_in_link: manage && may_get_sign_in_link(member),
        disable: manage && member.status == UserStatus::Active,
        enable: manage && member.status == UserStatus::Disabled,
        remove: manage && present,
    }
}

/// Whether the caller may change, disable or remove `member`, or make them a sign-in link:
/// owners are touched only by owners.
pub fn may_manage_member(caller: &Caller, member: &User) -> bool {
    caller.can(MANAGE_MEMBERS) && owners_only(caller, member.role)
}

/// Whether the caller may give `role` to a member, new or existing: only owners make owners.
pub fn may_assign_role(caller: &Caller, role: Role) -> bool {
    caller.can(MANAGE_MEMBERS) && owners_only(caller, role)
}

/// The roles the caller may give, highest first.
pub fn assignable_roles(caller: &Caller) -> Vec<Role> {
    [Role::Owner, Role::Admin, Role::Developer, Role::Viewer]
        .into_iter()
        .filter(|r| may_assign_role(caller, *r))
        .collect()
}

/// Whether `member` may be given a sign-in link: a disabled member is enabled first, and a
/// service account never signs in.
pub fn may_get_sign_in_link(member: &User) -> bool {
    member.status == UserStatus::Active && !member.is_service()
}

/// Whether the caller may create, change or delete IP ACLs and key groups.
pub fn may_manage_access(caller: &Caller) -> bool {
    caller.can(MANAGE_ACCESS)
}

fn owners_only(caller: &Caller, role: Role) -> bool {
    role != Role::Owner || caller.user.role == Role::Owner
}

/// Whether the caller may change their own name and password: any member signed in to the
/// dashboard, whatever their role. A management key acts for its owner but is not them, and
/// holding one must not be a way to the owner's password.
pub fn may_edit_own_profile(caller: &Caller) -> bool {
    matches!(caller.via, Via::Session)
}

// -------------------------------------------------------------------- APIs

/// Whether the caller may change `api`: the built-in management API never changes.
pub fn may_edit_api(caller: &Caller, api: &Api) -> bool {
    caller.can(WRITE_APIS) && api_changeable(api)
}

/// Whether `api` can be changed at all.
pub fn api_changeable(api: &Api) -> bool {
    !api.is_management()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::key::KeyHash;
    use crate::domain::model::{Environment, MANAGEMENT_API_SLUG};
    use crate::service::Via;

    const NOW: Millis = 1_000_000;

    fn user(id: &str, role: Role) -> User {
        User {
            id: id.into(),
            org_id: "org_1".into(),
            email: format!("{id}@example.com"),
            name: id.into(),
            role,
            status: UserStatus::Active,
            kind: crate::domain::model::UserKind::Person,
            created_at: 0,
        }
    }

    fn caller(u: &User) -> Caller {
        Caller {
            org_id: u.org_id.clone(),
            user: Arc::new(u.clone()),
            via: Via::Session,
            ip: None,
            user_agent: None,
        }
    }

    fn api(slug: &str) -> Api {
        Api {
            id: format!("api_{slug}"),
            org_id: "org_1".into(),
            name: slug.into(),
            slug: slug.into(),
            prefix_live: "kw_live_".into(),
            prefix_test: "kw_test_".into(),
            scopes: Vec::new(),
            token_types: vec!["standard".into()],
            accept_x_api_key: false,
            default_rate_limit: None,
            upstream: None,
            hosts: Vec::new(),
            routes: Vec::new(),
            created_at: 0,
        }
    }

    /// A live key of `api` owned by `owner` and created by them.
    fn key(api: &Api, owner: &User) -> Key {
        Key {
            id: "key_3f9a0c1e7b2d".into(),
            org_id: "org_1".into(),
            api_id: api.id.clone(),
            name: "k".into(),
            description: None,
            key_prefix: "kw_live_".into(),
            token_type: "standard".into(),
            environment: Environment::Live,
            scopes: Vec::new(),
            ip_allowlist: Vec::new(),
            expires_at: None,
            enabled: true,
            hash: KeyHash([0; 32]),
            pepper_version: 1,
            owner_id: owner.id.clone(),
            created_by: owner.id.clone(),
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            last_used_ip: None,
            rate_limit: None,
            quota: None,
            metadata: serde_json::Map::new(),
            replaces: None,
            replaced_by: None,
            revoked_at: None,
            revoke_reason: None,
            deleted_at: None,
            exposed_at: None,
            recoverable: false,
            encrypted_secret: None,
            ip_acl_ids: Vec::new(),
            group_ids: Vec::new(),
            resources: Vec::new(),
            linked: Default::default(),
        }
    }

    struct Org {
        owner: User,
        admin: User,
        dev: User,
        other_dev: User,
        viewer: User,
        protected: Api,
        management: Api,
    }

    fn org() -> Org {
        Org {
            owner: user("owner", Role::Owner),
            admin: user("admin", Role::Admin),
            dev: user("dev", Role::Developer),
            other_dev: user("other", Role::Developer),
            viewer: user("viewer", Role::Viewer),
            protected: api("default"),
            management: api(MANAGEMENT_API_SLUG),
        }
    }

    fn actions(by: &User, k: &Key, api: &Api, owner: &User) -> KeyActions {
        key_actions(&caller(by), k, Some(api), Some(owner), NOW)
    }

    const ALL_BUT_REVEAL: KeyActions = KeyActions {
        edit: true,
        rotate: true,
        revoke: true,
        delete: true,
        reveal: false,
    };
    const NOTHING: KeyActions = KeyActions {
        edit: false,
        rotate: false,
        revoke: false,
        delete: false,
        reveal: false,
    };

    #[test]
    fn owners_and_admins_may_change_every_key_but_developers_only_their_own() {
        let o = org();
        let k = key(&o.protected, &o.dev);
        for by in [&o.owner, &o.admin, &o.dev] {
            assert_eq!(
                actions(by, &k, &o.protected, &o.dev),
                ALL_BUT_REVEAL,
                "{:?}",
                by.role
            );
        }
        assert_eq!(actions(&o.other_dev, &k, &o.protected, &o.dev), NOTHING);
    }

    #[test]
    fn a_viewer_may_do_nothing_even_with_their_own_key() {
        let o = org();
        let mut k = key(&o.protected, &o.viewer);
        k.recoverable = true;
        assert_eq!(actions(&o.viewer, &k, &o.protected, &o.viewer), NOTHING);
    }

    #[test]
    fn the_creator_of_someone_elses_key_may_revoke_and_delete_it_but_not_change_it() {
        let o = org();
        let mut k = key(&o.protected, &o.other_dev);
        k.created_by = o.dev.id.clone();
        assert_eq!(
            actions(&o.dev, &k, &o.protected, &o.other_dev),
            KeyActions {
                revoke: true,
                delete: true,
                ..NOTHING
            }
        );
        assert!(may_remove_key(&caller(&o.dev), &k));
        assert!(!may_change_key(&caller(&o.dev), &k));
    }

    #[test]
    fn only_an_owner_may_change_or_reveal_a_management_key_an_owner_owns() {
        let o = org();
        let mut k = key(&o.management, &o.owner);
        k.recoverable = true;
        assert_eq!(
            actions(&o.admin, &k, &o.management, &o.owner),
            KeyActions {
                revoke: true,
                delete: true,
                ..NOTHING
            },
            "an admin may still take it back"
        );
        assert_eq!(
            actions(&o.owner, &k, &o.management, &o.owner),
            KeyActions {
                reveal: true,
                ..ALL_BUT_REVEAL
            }
        );
        // The rule is about the role a management key acts with: other APIs' keys carry none.
        let mut protected = key(&o.protected, &o.owner);
        protected.recoverable = true;
        assert_eq!(
            actions(&o.admin, &protected, &o.protected, &o.owner),
            KeyActions {
                reveal: true,
                ..ALL_BUT_REVEAL
            }
        );
        // An admin's management key is another admin's to change.
        let admins = key(&o.management, &o.admin);
        let other_admin = user("admin2", Role::Admin);
        assert!(actions(&other_admin, &admins, &o.management, &o.admin).rotate);
        assert!(!may_act_for_owner(&caller(&o.dev), &o.management, &o.admin));
        assert!(may_act_for_owner(&caller(&o.dev), &o.protected, &o.admin));
    }

    #[test]
    fn only_admins_and_owners_may_reveal_and_only_recoverable_live_keys() {
        let o = org();
        let mut k = key(&o.protected, &o.dev);
        assert!(
            !actions(&o.admin, &k, &o.protected, &o.dev).reveal,
            "not recoverable"
        );
        k.recoverable = true;
        assert!(actions(&o.admin, &k, &o.protected, &o.dev).reveal);
        assert!(actions(&o.owner, &k, &o.protected, &o.dev).reveal);
        assert!(
            !actions(&o.dev, &k, &o.protected, &o.dev).reveal,
            "developers lack keys:reveal, even for their own key"
        );
        k.revoked_at = Some(NOW - 1);
        assert!(!actions(&o.admin, &k, &o.protected, &o.dev).reveal);
    }

    #[test]
    fn a_rotated_key_may_be_edited_revoked_and_deleted_but_not_rotated_again() {
        let o = org();
        let mut k = key(&o.protected, &o.dev);
        k.replaced_by = Some("key_000000000001".into());
        k.revoked_at = Some(NOW + 60_000);
        assert_eq!(
            actions(&o.dev, &k, &o.protected, &o.dev),
            KeyActions {
                rotate: false,
                ..ALL_BUT_REVEAL
            }
        );
        let refused = rotatable(&k, NOW).unwrap_err().to_string();
        assert_eq!(
            refused,
            "This key was already rotated; rotate its replacement key_000000000001 instead."
        );
    }

    #[test]
    fn each_state_offers_what_its_operations_accept() {
        let o = org();
        let fresh = key(&o.protected, &o.dev);
        let of = |k: &Key| actions(&o.owner, k, &o.protected, &o.dev);

        let mut disabled = fresh.clone();
        disabled.enabled = false;
        assert_eq!(of(&disabled), ALL_BUT_REVEAL);

        let mut expired = fresh.clone();
        expired.expires_at = Some(NOW - 1);
        assert_eq!(
            of(&expired),
            KeyActions {
                rotate: false,
                ..ALL_BUT_REVEAL
            }
        );
        assert!(
            rotatable(&expired, NOW)
                .unwrap_err()
                .to_string()
                .starts_with("An expired key cannot be rotated")
        );

        let mut revoked = fresh.clone();
        revoked.revoked_at = Some(NOW);
        revoked.recoverable = true;
        assert_eq!(
            of(&revoked),
            KeyActions {
                delete: true,
                ..NOTHING
            }
        );
        assert_eq!(
            editable(&revoked, NOW).unwrap_err().to_string(),
            "A revoked or deleted key cannot be edited."
        );

        let mut deleted = fresh.clone();
        deleted.deleted_at = Some(NOW - 1);
        assert_eq!(of(&deleted), NOTHING);
        assert!(matches!(
            revealable(&deleted, NOW),
            Err(ServiceError::Conflict(_))
        ));
    }

    #[test]
    fn without_its_api_or_owner_a_key_is_judged_by_ownership_and_state_alone() {
        let o = org();
        let k = key(&o.management, &o.owner);
        assert_eq!(
            key_actions(&caller(&o.admin), &k, None, None, NOW),
            ALL_BUT_REVEAL,
            "the operations refuse what the page cannot tell"
        );
    }

    #[test]
    fn scopes_of_the_management_api_are_granted_only_by_those_who_hold_them() {
        let o = org();
        for scope in ["keys:read", "users:write"] {
            assert!(may_grant_scope(&caller(&o.admin), &o.management, scope));
            assert!(may_grant_scope(&caller(&o.dev), &o.protected, scope));
        }
        assert!(may_grant_scope(
            &caller(&o.dev),
            &o.management,
            "keys:write"
        ));
        assert!(!may_grant_scope(
            &caller(&o.dev),
            &o.management,
            "users:write"
        ));
        assert!(!may_grant_scope(
            &caller(&o.viewer),
            &o.management,
            "keys:write"
        ));
    }

    #[test]
    fn what_each_role_may_do_in_the_organization() {
        let o = org();
        let of = |u: &User| org_actions(&caller(u));
        let everything = OrgActions {
            create_keys: true,
            create_keys_for_others: true,
            read_audit: true,
            read_security_events: true,
            read_usage: true,
            manage_members: true,
            create_apis: true,
            update_org: true,
            manage_webhooks: true,
        };
        assert_eq!(of(&o.owner), everything);
        assert_eq!(of(&o.admin), everything);
        assert_eq!(
            of(&o.dev),
            OrgActions {
                create_keys: true,
                read_audit: true,
                read_security_events: true,
                read_usage: true,
                ..NO_ORG_ACTIONS
            }
        );
        assert_eq!(
            of(&o.viewer),
            OrgActions {
                read_audit: true,
                read_security_events: true,
                read_usage: true,
                ..NO_ORG_ACTIONS
            }
        );
    }

    const NO_ORG_ACTIONS: OrgActions = OrgActions {
        create_keys: false,
        create_keys_for_others: false,
        read_audit: false,
        read_security_events: false,
        read_usage: false,
        manage_members: false,
        create_apis: false,
        update_org: false,
        manage_webhooks: false,
    };

    #[test]
    fn only_owners_touch_owners_and_make_owners() {
        let o = org();
        let second_owner = user("owner2", Role::Owner);
        let all = MemberActions {
            change_role: true,
            new_sign_in_link: true,
            disable: true,
            enable: false,
            remove: true,
        };
        assert_eq!(member_actions(&caller(&o.owner), &second_owner), all);
        assert_eq!(
            member_actions(&caller(&o.admin), &second_owner),
            MemberActions::default()
        );
        assert_eq!(member_actions(&caller(&o.admin), &o.dev), all);
        assert_eq!(member_actions(&caller(&o.admin), &o.admin), all);
        for by in [&o.dev, &o.viewer] {
            assert_eq!(
                member_actions(&caller(by), &o.viewer),
                MemberActions::default()
            );
            assert!(assignable_roles(&caller(by)).is_empty());
        }
        assert_eq!(
            assignable_roles(&caller(&o.owner)),
            [Role::Owner, Role::Admin, Role::Developer, Role::Viewer]
        );
        assert_eq!(
            assignable_roles(&caller(&o.admin)),
            [Role::Admin, Role::Developer, Role::Viewer]
        );
    }

    #[test]
    fn a_disabled_member_may_be_enabled_but_gets_no_sign_in_link_nor_new_keys() {
        let o = org();
        let mut dev = o.dev.clone();
        assert!(may_own_keys(&dev));
        dev.status = UserStatus::Disabled;
        assert!(!may_own_keys(&dev));
        assert!(!may_get_sign_in_link(&dev));
        assert_eq!(
            member_actions(&caller(&o.admin), &dev),
            MemberActions {
                change_role: true,
                enable: true,
                remove: true,
                ..MemberActions::default()
            }
        );
        dev.status = UserStatus::Deleted;
        assert_eq!(
            member_actions(&caller(&o.owner), &dev),
            MemberActions::default()
        );
    }

    #[test]
    fn recoverable_keys_need_the_policy_and_an_encryption_key() {
        let mut p = Policies {
            recoverable_keys: false,
            ..Policies::default()
        };
        assert!(recoverable_keys(&p, true).unwrap_err().contains("policy"));
        p.recoverable_keys = true;
        assert!(recoverable_keys(&p, true).is_ok());
        assert!(
            recoverable_keys(&p, false)
                .unwrap_err()
                .contains("KEYWARD_ENCRYPTION_KEY")
        );
        assert!(recoverable_policy(true).is_ok() && recoverable_policy(false).is_err());
    }

    #[test]
    fn members_edit_their_own_profile_only_when_signed_in() {
        let o = org();
        for u in [&o.owner, &o.viewer] {
            assert!(may_edit_own_profile(&caller(u)));
        }
    }

    #[test]
    fn the_management_api_is_never_edited() {
        let o = org();
        assert!(may_edit_api(&caller(&o.admin), &o.protected));
        assert!(!may_edit_api(&caller(&o.owner), &o.management));
        assert!(!may_edit_api(&caller(&o.dev), &o.protected));
    }
}
