use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_api_with_its_own_prefix_and_catalogue_issues_matching_keys() {
    let app = spawn_app().await;
    app.clock.advance(10);
    let res = app
        .post(
            "/v1/apis",
            json!({"name": "Transcription API", "slug": "transcription",
                   "key_prefix": {"live": "tk_live_", "test": "tk_test_"},
                   "scopes": [{"name": "transcripts:read", "description": "Read transcripts"}],
                   "token_types": ["batch", "realtime"]}),
        )
        .await;
    let api = res.assert_status(201).clone();
    assert!(api["id"].as_str().unwrap().starts_with("api_"));
    assert_eq!(
        api["key_prefix"],
        json!({"live": "tk_live_", "test": "tk_test_"})
    );
    assert_eq!(api["accept_x_api_key"], false);
    assert_eq!(api["routes"], json!([]));
    let live = app.create_key(json!({"name": "l", "api_id": api["id"], "type": "batch", "scopes": ["transcripts:read"]})).await;
    assert!(live["key"].as_str().unwrap().starts_with("tk_live_"));
    let test = app
        .create_key(
            json!({"name": "t", "api_id": api["id"], "type": "realtime", "environment": "test"}),
        )
        .await;
    assert!(test["key"].as_str().unwrap().starts_with("tk_test_"));
    assert_eq!(test["environment"], "test");
    // `standard` is not one of this API's token types, and the default type is standard.
    app.post("/v1/keys", json!({"name": "s", "api_id": api["id"]}))
        .await
        .assert_problem(422, "validation_failed");
    let list = app.get("/v1/apis").await;
    let slugs: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["keyward", "default", "transcription"]);
    let one = app
        .get(&format!("/v1/apis/{}", api["id"].as_str().unwrap()))
        .await;
    assert_eq!(one.body["scopes"][0]["description"], "Read transcripts");
}

#[tokio::test]
async fn api_definitions_are_validated() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/v1/apis",
            json!({"name": "", "slug": "Bad Slug", "key_prefix": {"live": "LIVE", "test": "kw_"},
                   "scopes": [{"name": "Upper"}, {"name": "ok:read"}, {"name": "ok:read"}], "token_types": [],
                   "upstream": "ftp://x"}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    let fields = res.error_fields();
    for f in [
        "name",
        "slug",
        "key_prefix.live",
        "scopes[0].name",
        "scopes[2].name",
        "token_types",
        "upstream",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    app.post("/v1/apis", json!({"name": "k", "slug": "keyward"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post("/v1/apis", json!({"name": "a", "slug": "dup"}))
        .await
        .assert_status(201);
    app.post("/v1/apis", json!({"name": "b", "slug": "dup"}))
        .await
        .assert_problem(409, "conflict");
    app.get("/v1/apis/api_nope")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn apis_can_be_edited_but_the_management_api_cannot() {
    let app = spawn_app().await;
    let api = app.create_api("editable", &["a:read"]).await;
    let id = api["id"].as_str().unwrap();
    let res = app
        .patch(&format!("/v1/apis/{id}"), json!({"name": "Renamed", "accept_x_api_key": true,
                                                   "scopes": [{"name": "a:read"}, {"name": "a:write", "description": "Write"}]}))
        .await;
    let body = res.assert_status(200);
    assert_eq!(body["name"], "Renamed");
    assert_eq!(body["accept_x_api_key"], true);
    assert_eq!(body["scopes"].as_array().unwrap().len(), 2);
    app.create_key(json!({"name": "w", "api_id": id, "scopes": ["a:write"]}))
        .await;
    app.patch(
        &format!("/v1/apis/{}", app.management_api_id),
        json!({"name": "mine"}),
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn gateway_fields_are_validated_and_route_prefixes_stored_in_normal_form() {
    let app = spawn_app().await;
    let api = app.create_api("gatewayed", &["a:read"]).await;
    assert_eq!(api["hosts"], json!([]));
    let id = api["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/v1/apis/{id}"),
            json!({"upstream": "http://127.0.0.1:9/base", "hosts": ["api.example.com", "b.example"],
                   "routes": [{"path_prefix": "/api//v3/./%73tream/", "methods": ["GET"],
                               "required_scopes": ["a:read"], "token_types": ["realtime"]}]}),
        )
        .await;
    let body = res.assert_status(200);
    assert_eq!(body["hosts"], json!(["api.example.com", "b.example"]));
    assert_eq!(body["routes"][0]["path_prefix"], "/api/v3/stream/");
    let again = app.get(&format!("/v1/apis/{id}")).await;
    assert_eq!(again.body["hosts"], body["hosts"]);
    assert_eq!(again.body["routes"], body["routes"]);
    let res = app
        .patch(
            &format!("/v1/apis/{id}"),
            json!({"hosts": ["API.example.com", "a.example:8080", "-x", "ok.example", "ok.example"],
                   "routes": [{"path_prefix": "no-slash"}, {"path_prefix": "/x", "token_types": ["nope"]}]}),
        )
        .await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(
        res.error_fields(),
        [
            "hosts[0]",
            "hosts[1]",
            "hosts[2]",
            "hosts[4]",
            "routes[0].path_prefix",
            "routes[1].token_types[0]"
        ]
    );
    let cleared = app
        .patch(
            &format!("/v1/apis/{id}"),
            json!({"hosts": [], "upstream": null}),
        )
        .await;
    assert_eq!(cleared.assert_status(200)["hosts"], json!([]));
    assert_eq!(cleared.body["upstream"], json!(null));
}
