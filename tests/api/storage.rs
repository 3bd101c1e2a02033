//! The storage suite, run against a SQLite file and a fresh PostgreSQL schema alike.

use keyward::domain::key::{self, KeyHash};
use keyward::domain::model::*;
use keyward::store::{
    AuditFilter, KeyFilter, KeyOrder, KeySort, StatusFilter, Store, StoreError, UsageTouch,
};

use crate::helpers::PgSchema;

enum Handle {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

async fn open(postgres: bool) -> (Store, Handle) {
    if postgres {
        let schema = PgSchema::create().await;
        let store = Store::connect(&schema.url).await.expect("PostgreSQL store");
        (store, Handle::Postgres(schema))
    } else {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        (
            Store::connect(&url).await.expect("SQLite store"),
            Handle::Sqlite(dir),
        )
    }
}

fn org(id: &str) -> Org {
    Org {
        id: id.into(),
        name: format!("Org {id}"),
        plan: "pro".into(),
        api_access: true,
        billing_status: "active".into(),
        policies: Policies::default(),
        created_at: 1,
    }
}

fn user(id: &str, org: &str) -> User {
    User {
        id: id.into(),
        org_id: org.into(),
        email: format!("{id}@example.com"),
        name: id.into(),
        role: Role::Owner,
        status: UserStatus::Active,
        kind: keyward::domain::model::UserKind::Person,
        created_at: 1,
    }
}

fn api(id: &str, org: &str, slug: &str) -> Api {
    Api {
        id: id.into(),
        org_id: org.into(),
        name: slug.into(),
        slug: slug.into(),
        prefix_live: "kw_live_".into(),
        prefix_test: "kw_test_".into(),
        scopes: vec![ScopeDef {
            name: "a:read".into(),
            description: "Read".into(),
        }],
        token_types: vec!["standard".into()],
        accept_x_api_key: false,
        default_rate_limit: Some(RateLimit {
            requests: 5,
            per_seconds: 1,
        }),
        upstream: None,
        hosts: Vec::new(),
        routes: vec![],
        created_at: 1,
    }
}

fn key(public_id: &str, org: &str, api: &str, owner: &str, created_at: i64) -> Key {
    Key {
        id: format!("key_{public_id}"),
        org_id: org.into(),
        api_id: api.into(),
        name: format!("key {public_id}"),
        description: Some("d".into()),
        key_prefix: "kw_live_".into(),
        token_type: "standard".into(),
        environment: Environment::Live,
        scopes: vec!["a:read".into()],
        ip_allowlist: vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        expires_at: Some(10_000),
        enabled: true,
        hash: key::Pepper::new(1, b"p").hash(public_id),
        pepper_version: 1,
        owner_id: owner.into(),
        created_by: owner.into(),
        created_at,
        updated_at: created_at,
        last_used_at: None,
        last_used_ip: None,
        rate_limit: Some(RateLimit {
            requests: 10,
            per_seconds: 60,
        }),
        quota: Some(Quota {
            remaining: 3,
            refill: None,
            refilled_at: created_at,
        }),
        metadata: serde_json::json!({"team": "x"})
            .as_object()
            .unwrap()
            .clone(),
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

async fn seeded(postgres: bool) -> (Store, Handle) {
    let (store, h) = open(postgres).await;
    let first = key("aaaaaaaaaaaa", "org_1", "api_1", "usr_1", 100);
    store
        .create_org(
            &org("org_1"),
            &user("usr_1", "org_1"),
            &[api("api_1", "org_1", "one")],
            &first,
        )
        .await
        .unwrap();
    (store, h)
}

async fn keys_round_trip_every_field(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    let stored = store.get_key("key_aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(stored, key("aaaaaaaaaaaa", "org_1", "api_1", "usr_1", 100));
    assert!(
        store
            .get_key_in_org("org_2", "key_aaaaaaaaaaaa")
            .await
            .unwrap()
            .is_none()
    );
    let a = store.get_api("api_1").await.unwrap().unwrap();
    assert_eq!(a, api("api_1", "org_1", "one"));
    assert_eq!(store.get_org("org_1").await.unwrap().unwrap(), org("org_1"));
    assert_eq!(
        store.get_user("usr_1").await.unwrap().unwrap(),
        user("usr_1", "org_1")
    );
    assert_eq!(store.count_orgs().await.unwrap(), 1);
}

async fn duplicates_are_conflicts_and_leave_nothing_behind(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    let dup = key("aaaaaaaaaaaa", "org_1", "api_1", "usr_1", 5);
    assert!(matches!(
        store.create_key(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    let mut same_hash = key("bbbbbbbbbbbb", "org_1", "api_1", "usr_1", 5);
    same_hash.hash = key::Pepper::new(1, b"p").hash("aaaaaaaaaaaa");
    assert!(matches!(
        store.create_key(&same_hash).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_api(&api("api_2", "org_1", "one")).await,
        Err(StoreError::Conflict(_))
    ));
    // A failed organization creation rolls back entirely.
    let res = store
        .create_org(
            &org("org_2"),
            &user("usr_2", "org_2"),
            &[api("api_3", "org_2", "x")],
            &dup,
        )
        .await;
    assert!(res.is_err());
    assert!(store.get_org("org_2").await.unwrap().is_none());
    assert!(store.get_user("usr_2").await.unwrap().is_none());
}

async fn listing_filters_pages_and_orders_newest_first(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    for (i, id) in [
        "bbbbbbbbbbbb",
        "cccccccccccc",
        "dddddddddddd",
        "eeeeeeeeeeee",
    ]
    .iter()
    .enumerate()
    {
        let mut k = key(id, "org_1", "api_1", "usr_1", 200 + i as i64);
        k.expires_at = None;
        match i {
            1 => k.revoked_at = Some(50),
            2 => k.deleted_at = Some(50),
            3 => k.expires_at = Some(150),
            _ => {}
        }
        store.create_key(&k).await.unwrap();
    }
    let ids = |keys: Vec<Key>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    let f = |status, limit| KeyFilter {
        status,
        limit,
        ..Default::default()
    };
    let now = 20_000;
    assert_eq!(
        ids(store.list_keys("org_1", &f(None, 10), now).await.unwrap()),
        [
            "key_eeeeeeeeeeee",
            "key_cccccccccccc",
            "key_bbbbbbbbbbbb",
            "key_aaaaaaaaaaaa"
        ]
    );
    assert_eq!(
        ids(store
            .list_keys("org_1", &f(Some(StatusFilter::Active), 10), now)
            .await
            .unwrap()),
        ["key_bbbbbbbbbbbb"]
    );
    assert_eq!(
        ids(store
            .list_keys("org_1", &f(Some(StatusFilter::Revoked), 10), now)
            .await
            .unwrap()),
        ["key_cccccccccccc"]
    );
    assert_eq!(
        ids(store
            .list_keys("org_1", &f(Some(StatusFilter::Expired), 10), now)
            .await
            .unwrap()),
        ["key_eeeeeeeeeeee", "key_aaaaaaaaaaaa"]
    );
    assert_eq!(
        store
            .list_keys("org_1", &f(Some(StatusFilter::All), 10), now)
            .await
            .unwrap()
            .len(),
        5
    );
    let page = KeyFilter {
        limit: 2,
        cursor: Some((201, "key_cccccccccccc".into())),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_keys("org_1", &page, now).await.unwrap()),
        ["key_bbbbbbbbbbbb", "key_aaaaaaaaaaaa"]
    );
    assert!(
        store
            .list_keys("org_9", &f(None, 10), now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_live_keys("org_1", now).await.unwrap(), 3);
    let owner = KeyFilter {
        owner_id: Some("usr_9".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(
        store
            .list_keys("org_1", &owner, now)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn listing_searches_sorts_filters_and_counts_within_the_organization(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    // Names that a careless pattern would confuse: LIKE's own wildcards and escape character.
    let named = [
        (
            "bbbbbbbbbbbb",
            "Nightly export",
            300,
            None,
            Some(5_000),
            true,
            Environment::Live,
        ),
        (
            "cccccccccccc",
            "nightly BACKUP",
            200,
            Some(900),
            None,
            true,
            Environment::Test,
        ),
        (
            "dddddddddddd",
            "100% coverage_a",
            400,
            Some(950),
            Some(20_000),
            false,
            Environment::Live,
        ),
        (
            "eeeeeeeeeeee",
            "back\\slash",
            500,
            None,
            Some(15_000),
            true,
            Environment::Test,
        ),
    ];
    for (id, name, created, used, expires, enabled, env) in named {
        let mut k = key(id, "org_1", "api_1", "usr_1", created);
        k.name = name.into();
        k.last_used_at = used;
        k.expires_at = expires;
        k.enabled = enabled;
        k.environment = env;
        if env == Environment::Test {
            k.key_prefix = "kw_test_".into();
        }
        store.create_key(&k).await.unwrap();
    }
    // Another organization's key matches every search, and is never found.
    store
        .create_org(
            &org("org_2"),
            &user("usr_2", "org_2"),
            &[api("api_2", "org_2", "two")],
            &{
                let mut k = key("ffffffffffff", "org_2", "api_2", "usr_2", 600);
                k.name = "Nightly export".into();
                k
            },
        )
        .await
        .unwrap();
    let now = 1_000;
    let find = |search: &str, f: KeyFilter| {
        let store = store.clone();
        let search = search.to_owned();
        async move {
            let f = KeyFilter {
                search: Some(search).filter(|s| !s.is_empty()),
                limit: 50,
                ..f
            };
            let keys = store.list_keys("org_1", &f, now).await.unwrap();
            let total = store.count_keys("org_1", &f, now).await.unwrap();
            assert_eq!(
                total as usize,
                keys.len(),
                "one page: the total is what is listed"
            );
            keys.into_iter().map(|k| k.name).collect::<Vec<_>>()
        }
    };
    let all = KeyFilter::default;
    assert_eq!(
        find("NIGHTLY", all()).await,
        ["Nightly export", "nightly BACKUP"],
        "any case, newest first"
    );
    assert_eq!(
        find("%", all()).await,
        ["100% coverage_a"],
        "% is a character"
    );
    assert_eq!(
        find("_", all()).await,
        ["100% coverage_a"],
        "_ is a character"
    );
    assert_eq!(find("\\", all()).await, ["back\\slash"]);
    assert_eq!(find("key_cccc", all()).await, ["nightly BACKUP"], "by id");
    assert_eq!(
        find("cccccccc", all()).await,
        ["nightly BACKUP"],
        "by the id's hex"
    );
    assert_eq!(
        find("kw_test_cccccc••••", all()).await,
        ["nightly BACKUP"],
        "by the masked prefix a page shows"
    );
    assert!(
        find("kw_live_cccccc", all()).await.is_empty(),
        "another environment's prefix"
    );
    assert_eq!(
        find(
            "",
            KeyFilter {
                environment: Some(Environment::Test),
                ..all()
            }
        )
        .await,
        ["back\\slash", "nightly BACKUP"]
    );
    assert_eq!(
        find(
            "",
            KeyFilter {
                status: Some(StatusFilter::Disabled),
                ..all()
            }
        )
        .await,
        ["100% coverage_a"]
    );
    assert!(
        !find(
            "",
            KeyFilter {
                status: Some(StatusFilter::Active),
                ..all()
            }
        )
        .await
        .contains(&"100% coverage_a".to_owned()),
        "a disabled key is not active"
    );
    let order = |by, descending| KeyFilter {
        order: KeyOrder { by, descending },
        environment: None,
        ..all()
    };
    assert_eq!(
        find("", order(KeySort::Name, false)).await,
        [
            "100% coverage_a",
            "back\\slash",
            "key aaaaaaaaaaaa",
            "nightly BACKUP",
            "Nightly export"
        ],
        "names sort without regard to case"
    );
    // Never used sorts as the oldest use; never expiring as the latest expiry; ties by id.
    assert_eq!(
        find("", order(KeySort::LastUsed, true)).await,
        [
            "100% coverage_a",
            "nightly BACKUP",
            "back\\slash",
            "Nightly export",
            "key aaaaaaaaaaaa"
        ]
    );
    assert_eq!(
        find("", order(KeySort::Expires, false)).await,
        [
            "Nightly export",
            "key aaaaaaaaaaaa",
            "back\\slash",
            "100% coverage_a",
            "nightly BACKUP"
        ]
    );
    // Pages by offset in any order, with the total of every page.
    let page = KeyFilter {
        limit: 2,
        offset: 4,
        order: KeyOrder {
            by: KeySort::Name,
            descending: false,
        },
        ..KeyFilter::default()
    };
    let last = store.list_keys("org_1", &page, now).await.unwrap();
    assert_eq!(
        last.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["Nightly export"]
    );
    assert_eq!(store.count_keys("org_1", &page, now).await.unwrap(), 5);
}

async fn usage_touches_never_move_backwards_and_quotas_never_go_negative(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    let t = |at, ip: &str| UsageTouch {
        key_id: "key_aaaaaaaaaaaa".into(),
        at,
        ip: Some(ip.into()),
    };
    store.touch_keys(&[t(500, "198.51.100.1")]).await.unwrap();
    store.touch_keys(&[t(400, "198.51.100.2")]).await.unwrap();
    let k = store.get_key("key_aaaaaaaaaaaa").await.unwrap().unwrap();
    assert_eq!(
        (k.last_used_at, k.last_used_ip.as_deref()),
        (Some(500), Some("198.51.100.1"))
    );
    assert_eq!(
        store
            .consume_quota("key_aaaaaaaaaaaa", 2, 600)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .consume_quota("key_aaaaaaaaaaaa", 2, 600)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .consume_quota("key_aaaaaaaaaaaa", 1, 600)
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .consume_quota("key_aaaaaaaaaaaa", 1, 600)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.consume_quota("key_missing", 1, 600).await.unwrap(),
        None
    );
}

async fn guarded_writes_never_undo_a_revoke_or_a_delete(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    let id = "key_aaaaaaaaaaaa";
    let stale = store.get_key(id).await.unwrap().unwrap();
    assert!(store.revoke_key("org_1", id, 500, "leaked").await.unwrap());
    assert!(
        !store.revoke_key("org_1", id, 600, "again").await.unwrap(),
        "idempotent"
    );
    assert!(
        !store.revoke_key("org_2", id, 400, "foreign").await.unwrap(),
        "scoped by organization"
    );
    // An edit prepared before the revoke must not bring the key back.
    let mut edit = stale.clone();
    edit.name = "edited".into();
    assert!(!store.update_key_settings(&edit, 700).await.unwrap());
    let k = store.get_key(id).await.unwrap().unwrap();
    assert_eq!(
        (k.revoked_at, k.revoke_reason.as_deref(), k.name.as_str()),
        (Some(500), Some("leaked"), "key aaaaaaaaaaaa")
    );
    assert!(store.delete_key("org_1", id, 800).await.unwrap());
    assert!(!store.delete_key("org_1", id, 900).await.unwrap());
    let k = store.get_key(id).await.unwrap().unwrap();
    assert_eq!(
        (k.deleted_at, k.revoked_at, k.revoke_reason.as_deref()),
        (Some(800), Some(500), Some("leaked"))
    );
    let version = store.get_key(id).await.unwrap().unwrap().updated_at;
    assert!(store.mark_key_exposed(id, 10).await.unwrap());
    assert!(!store.mark_key_exposed(id, 20).await.unwrap());
    let k = store.get_key(id).await.unwrap().unwrap();
    // Marked at an instant older than the key's version (another instance's clock): the version
    // still moves forward, so instances following changes see the mark.
    assert_eq!((k.exposed_at, k.updated_at), (Some(10), version + 1));
    let revoked = store
        .revoke_keys_of_owner("org_1", "usr_1", 1000, "owner deleted")
        .await
        .unwrap();
    assert!(revoked.is_empty(), "nothing live is left to revoke");
}

async fn a_flush_of_hundreds_of_keys_updates_each_one(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    let keys: Vec<Key> = (0..650)
        .map(|i| {
            let mut k = key(&format!("{i:012x}"), "org_1", "api_1", "usr_1", 100 + i);
            k.hash = key::Pepper::new(1, b"p").hash(&format!("bulk{i}"));
            k
        })
        .collect();
    store.create_keys(&keys).await.unwrap();
    let touches: Vec<UsageTouch> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| UsageTouch {
            key_id: k.id.clone(),
            at: 1_000 + i as i64,
            ip: (i % 2 == 0).then(|| format!("10.0.{}.{}", i / 256, i % 256)),
        })
        .collect();
    store.touch_keys(&touches).await.unwrap();
    for (i, k) in keys.iter().enumerate().step_by(97) {
        let stored = store.get_key(&k.id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, Some(1_000 + i as i64));
        assert_eq!(stored.last_used_ip, touches[i].ip);
    }
    let last = store.get_key(&keys[649].id).await.unwrap().unwrap();
    assert_eq!(last.last_used_at, Some(1_649));
}

async fn rotation_and_updates_are_stored_atomically(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    let mut old = store.get_key("key_aaaaaaaaaaaa").await.unwrap().unwrap();
    let mut new = key("ffffffffffff", "org_1", "api_1", "usr_1", 300);
    new.replaces = Some(old.id.clone());
    old.revoked_at = Some(900);
    old.revoke_reason = Some("rotated".into());
    old.replaced_by = Some(new.id.clone());
    assert!(store.rotate_key(&old, &new, 800).await.unwrap());
    let mut again = key("abababababab", "org_1", "api_1", "usr_1", 301);
    again.replaces = Some(old.id.clone());
    assert!(
        !store.rotate_key(&old, &again, 800).await.unwrap(),
        "a key is replaced once"
    );
    assert!(
        store.get_key(&again.id).await.unwrap().is_none(),
        "nothing stored for the loser"
    );
    let stored_old = store.get_key(&old.id).await.unwrap().unwrap();
    assert_eq!(
        (stored_old.revoked_at, stored_old.replaced_by.as_deref()),
        (Some(900), Some("key_ffffffffffff"))
    );
    assert_eq!(
        store
            .get_key(&new.id)
            .await
            .unwrap()
            .unwrap()
            .replaces
            .as_deref(),
        Some("key_aaaaaaaaaaaa")
    );
    let mut edited = stored_old.clone();
    edited.name = "renamed".into();
    edited.ip_allowlist.clear();
    edited.rate_limit = None;
    edited.metadata.clear();
    store.update_key(&edited).await.unwrap();
    assert_eq!(store.get_key(&old.id).await.unwrap().unwrap(), edited);
    // An update addressed to another organization changes nothing.
    let mut foreign = edited.clone();
    foreign.org_id = "org_2".into();
    foreign.name = "hijacked".into();
    store.update_key(&foreign).await.unwrap();
    assert_eq!(
        store.get_key(&old.id).await.unwrap().unwrap().name,
        "renamed"
    );
    let revoked = store
        .active_key_ids("org_1", "api_1", "usr_1", 1000)
        .await
        .unwrap();
    assert_eq!(revoked, ["key_ffffffffffff"]);
}

async fn the_audit_log_appends_filters_and_pages(postgres: bool) {
    let (store, _h) = seeded(postgres).await;
    for i in 0..5 {
        let e = AuditEvent {
            id: format!("evt_{i}"),
            org_id: if i == 4 {
                "org_2".into()
            } else {
                "org_1".into()
            },
            actor: Actor {
                kind: "user",
                id: Some("usr_1".into()),
                label: "usr_1@example.com".into(),
            },
            action: if i % 2 == 0 {
                "key.created".into()
            } else {
                "key.revoked".into()
            },
            target_type: "key".into(),
            target_id: Some(format!("key_{i}")),
            target_label: Some("kw_live_x••••".into()),
            ip: Some("127.0.0.1".into()),
            user_agent: Some("test".into()),
            details: serde_json::json!({"i": i}),
            created_at: 1000 + i,
        };
        store.append_audit(&e).await.unwrap();
    }
    let all = store
        .list_audit(
            "org_1",
            &AuditFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_3", "evt_2", "evt_1", "evt_0"]);
    assert_eq!(all[0].1.details, serde_json::json!({"i": 3}));
    let created = AuditFilter {
        action: Some("key.created".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit("org_1", &created).await.unwrap().len(), 2);
    let by_actor = AuditFilter {
        actor: Some("usr_1@example.com".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit("org_1", &by_actor).await.unwrap().len(), 4);
    let window = AuditFilter {
        from: Some(1001),
        to: Some(1003),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list_audit("org_1", &window).await.unwrap().len(), 2);
    let page = AuditFilter {
        cursor: Some(all[1].0),
        limit: 10,
        ..Default::default()
    };
    let rest: Vec<_> = store
        .list_audit("org_1", &page)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.id)
        .collect();
    assert_eq!(rest, ["evt_1", "evt_0"]);
    let target = AuditFilter {
        target_id: Some("key_4".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(
        store.list_audit("org_1", &target).await.unwrap().is_empty(),
        "scoped by organization"
    );
}

async fn reopening_runs_migrations_once_and_keeps_the_data(postgres: bool) {
    let (store, h) = seeded(postgres).await;
    let url = match &h {
        Handle::Sqlite(dir) => format!("sqlite://{}", dir.path().join("s.db").display()),
        Handle::Postgres(schema) => schema.url.clone(),
    };
    store.close().await;
    let again = Store::connect(&url)
        .await
        .expect("migrations are idempotent");
    let k = again.get_key("key_aaaaaaaaaaaa").await.unwrap().unwrap();
    assert!(
        k.hash
            .ct_eq(&key::Pepper::new(1, b"p").hash("aaaaaaaaaaaa"))
    );
    assert!(KeyHash::from_hex(&k.hash.to_hex()).is_some());
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(false).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(true).await; })*
        }
    };
}

on_both_backends!(
    keys_round_trip_every_field,
    duplicates_are_conflicts_and_leave_nothing_behind,
    listing_filters_pages_and_orders_newest_first,
    listing_searches_sorts_filters_and_counts_within_the_organization,
    usage_touches_never_move_backwards_and_quotas_never_go_negative,
    rotation_and_updates_are_stored_atomically,
    a_flush_of_hundreds_of_keys_updates_each_one,
    guarded_writes_never_undo_a_revoke_or_a_delete,
    the_audit_log_appends_filters_and_pages,
    reopening_runs_migrations_once_and_keeps_the_data,
);
