//! IP ACLs and key groups: lists of networks, and scopes with a rate limit, shared by many keys;
//! created, edited and deleted here by members allowed to (`org:admin`). A change applies to
//! every key that uses them at once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::keys::{parse_rate_limit, rate_limit_fields};
use super::layout::{
    self, Input, Nav, csrf_field, described_by, dialog, field, form_errors, input, page_header,
    time_date,
};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::domain::model::{Api, IpAcl, KeyGroup};
use crate::http::AppState;
use crate::service::acls::{self, CreateIpAcl, UpdateIpAcl};
use crate::service::groups::{self, CreateKeyGroup, UpdateKeyGroup};
use crate::service::{ServiceError, apis, authz};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/ip-acls", get(acls_page).post(create_acl))
        .route("/ip-acls/{id}/edit", post(edit_acl))
        .route("/ip-acls/{id}/delete", post(delete_acl))
        .route("/key-groups", get(groups_page).post(create_group))
        .route("/key-groups/{id}/edit", post(edit_group))
        .route("/key-groups/{id}/delete", post(delete_group))
}

/// A submitted form shown again: the dialog it came from, what was typed, what was wrong.
struct Correcting<'a> {
    dialog: String,
    form: &'a FormData,
    errors: FieldErrors,
}

fn lines(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn service_errors(e: ServiceError, field: &str) -> Result<FieldErrors, ServiceError> {
    match e {
        ServiceError::Validation(e) => Ok(e.into()),
        ServiceError::Conflict(d) => {
            let mut errors = FieldErrors::default();
            errors.add(field, d);
            Ok(errors)
        }
        other => Err(other),
    }
}

// -------------------------------------------------------------------- IP ACLs

async fn acls_page(State(state): State<Arc<AppState>>, m: Member) -> Response {
    render_acls(&state, &m, StatusCode::OK, None).await
}

async fn render_acls(
    state: &AppState,
    m: &Member,
    status: StatusCode,
    correcting: Option<&Correcting<'_>>,
) -> Response {
    let list = match acls::list(&state.ctx, &m.caller).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(m), e),
    };
    let mut used = Vec::with_capacity(list.len());
    for a in &list {
        match acls::keys_using(&state.ctx, &m.caller, a).await {
            Ok(n) => used.push(n),
            Err(e) => return error_page(Some(m), e),
        }
    }
    let can_write = authz::may_manage_access(&m.caller);
    let state_of = |id: &str| correcting.filter(|c| c.dialog == id);
    let content = html! {
        (page_header("IP ACLs", Some(html! {
            "Named lists of networks shared by many keys. A key accepts the addresses of its own allowlist and of every ACL it uses; change an ACL here and every such key follows at once."
        }), html! {
            @if can_write { button type="button" class="btn primary" data-open="create-acl" { "+ New IP ACL" } }
        }))
        @if list.is_empty() {
            div class="card empty" {
                h2 { "No IP ACLs yet" }
                p { "Create one for the networks your integrations call from (an office, a cloud region), then pick it when you create or edit keys." }
            }
        } @else {
            div class="table-wrap" {
                table class="table" id="acl-table" {
                    caption class="visually-hidden" { "IP ACLs" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Entries" } th scope="col" { "Keys" }
                        th scope="col" { "Changed" } th scope="col" { span class="visually-hidden" { "Actions" } }
                    } }
                    tbody {
                        @for (a, n) in list.iter().zip(&used) {
                            tr {
                                td data-label="Name" { strong { (a.name) } div class="muted small" { code { (a.id) } } }
                                td data-label="Entries" {
                                    ul class="chips" { @for e in &a.entries { li class="chip" { code { (e) } } } }
                                }
                                td data-label="Keys" { (n) }
                                td data-label="Changed" { (time_date(a.updated_at)) }
                                td class="row-actions" {
                                    @if can_write {
                                        button type="button" class="btn small" data-open={ "edit-acl-" (a.id) } { "Edit" }
                                        @if *n == 0 {
                                            form method="post" action={ "/ip-acls/" (a.id) "/delete" } class="inline-form" {
                                                (csrf_field(m))
                                                button type="submit" class="btn small danger" { "Delete" }
                                            }
                                        } @else {
                                            span class="muted small" title="Keys use it: remove it from them first" { " In use" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_write {
            @for a in &list {
                @let id = format!("edit-acl-{}", a.id);
                (acl_dialog(m, &id, "Edit IP ACL", &format!("/ip-acls/{}/edit", a.id), "Save changes", Some(a), state_of(&id)))
            }
            (acl_dialog(m, "create-acl", "New IP ACL", "/ip-acls", "Create IP ACL", None, state_of("create-acl")))
        }
    };
    page(m, status, layout::shell(m, Nav::IpAcls, "IP ACLs", content))
}

fn acl_dialog(
    m: &Member,
    id: &str,
    title: &str,
    action: &str,
    submit: &str,
    acl: Option<&IpAcl>,
    correcting: Option<&Correcting<'_>>,
) -> Markup {
    let no_errors = FieldErrors::default();
    let errors = correcting.map_or(&no_errors, |c| &c.errors);
    let (name, entries) = match (correcting, acl) {
        (Some(c), _) => (
            c.form.text("name").to_owned(),
            c.form.text("entries").to_owned(),
        ),
        (None, Some(a)) => (
            a.name.clone(),
            a.entries
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (None, None) => (String::new(), String::new()),
    };
    let eid = format!("{id}-entries");
    html! {
        (dialog(id, title, correcting.is_some(), false, html! {
            form method="post" action=(action) class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&["name", "entries"])))
                    (input(&format!("{id}-name"), "name", "Name", &name, errors, Input {
                        required: true, maxlength: Some(100), autofocus: true,
                        placeholder: Some("e.g. Office"), ..Input::default() }))
                    (field(&eid, "Entries", Some("One IPv4/IPv6 address or CIDR block per line, 1 to 100."), errors, "entries", html! {
                        textarea id=(eid) name="entries" rows="4" data-validate="ip-list" spellcheck="false"
                            autocapitalize="off" placeholder="203.0.113.0/24\n2001:db8::/48"
                            aria-describedby=(described_by(&eid, true))
                            aria-invalid=[errors.of("entries").is_some().then_some("true")] { (entries) }
                    }))
                    @if acl.is_some() {
                        p class="hint" { "Every key that uses this ACL follows the change on its next request." }
                    }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { (submit) }
                }
            }
        }))
    }
}

async fn create_acl(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let input = CreateIpAcl {
        name: form.text("name").trim().to_owned(),
        entries: lines(form.text("entries")),
    };
    let errors = match acls::create(&state.ctx, &m.caller, input).await {
        Ok(a) => return redirect_with_notice(&m, "/ip-acls", &format!("Created {}.", a.name)),
        Err(e) => match service_errors(e, "name") {
            Ok(errors) => errors,
            Err(e) => return error_page(Some(&m), e),
        },
    };
    let c = Correcting {
        dialog: "create-acl".into(),
        form: &form,
        errors,
    };
    render_acls(&state, &m, StatusCode::UNPROCESSABLE_ENTITY, Some(&c)).await
}

async fn edit_acl(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let current = match acls::get(&state.ctx, &m.caller, &id).await {
        Ok(a) => a,
        Err(e) => return error_page(Some(&m), e),
    };
    let name = form.text("name").trim().to_owned();
    let entries = lines(form.text("entries"));
    let current_entries: Vec<String> = current.entries.iter().map(ToString::to_string).collect();
    let patch = UpdateIpAcl {
        name: (name != current.name).then_some(name),
        entries: (entries != current_entries).then_some(entries),
    };
    let errors = match acls::update(&state.ctx, &m.caller, &id, patch).await {
        Ok(a) => {
            return redirect_with_notice(
                &m,
                "/ip-acls",
                &format!("Saved {}; every key that uses it follows.", a.name),
            );
        }
        Err(e) => match service_errors(e, "name") {
            Ok(errors) => errors,
            Err(e) => return error_page(Some(&m), e),
        },
    };
    let c = Correcting {
        dialog: format!("edit-acl-{id}"),
        form: &form,
        errors,
    };
    render_acls(&state, &m, StatusCode::UNPROCESSABLE_ENTITY, Some(&c)).await
}

async fn delete_acl(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    match acls::delete(&state.ctx, &m.caller, &id).await {
        Ok(()) => redirect_with_notice(&m, "/ip-acls", "Deleted the IP ACL."),
        Err(e) => error_page(Some(&m), e),
    }
}

// -------------------------------------------------------------------- key groups

async fn groups_page(State(state): State<Arc<AppState>>, m: Member) -> Response {
    render_groups(&state, &m, StatusCode::OK, None).await
}

async fn render_groups(
    state: &AppState,
    m: &Member,
    status: StatusCode,
    correcting: Option<&Correcting<'_>>,
) -> Response {
    let loaded = async {
        let list = groups::list(&state.ctx, &m.caller).await?;
        let apis = apis::list(&state.ctx, &m.caller).await?;
        let mut members = Vec::with_capacity(list.len());
        for g in &list {
            members.push(groups::member_count(&state.ctx, &m.caller, g).await?);
        }
        Ok::<_, ServiceError>((list, apis, members))
    };
    let (list, all_apis, members) = match loaded.await {
        Ok(l) => l,
        Err(e) => return error_page(Some(m), e),
    };
    let protected: Vec<&Api> = all_apis.iter().filter(|a| !a.is_management()).collect();
    let can_write = authz::may_manage_access(&m.caller);
    let state_of = |id: &str| correcting.filter(|c| c.dialog == id);
    let api_name = |id: &str| {
        all_apis
            .iter()
            .find(|a| a.id == id)
            .map_or(id.to_owned(), |a| a.name.clone())
    };
    let content = html! {
        (page_header("Key groups", Some(html! {
            "Scopes and a rate limit shared by keys of one API. A key in a group holds its own scopes plus the group's, and the group's rate limit when it has none of its own; change a group here and every member key follows at once."
        }), html! {
            @if can_write && !protected.is_empty() { button type="button" class="btn primary" data-open="create-group" { "+ New key group" } }
        }))
        @if list.is_empty() {
            div class="card empty" {
                h2 { "No key groups yet" }
                p { "Create one for a kind of integration (say, read-only partners), then pick it when you create or edit their keys." }
            }
        } @else {
            div class="table-wrap" {
                table class="table" id="group-table" {
                    caption class="visually-hidden" { "Key groups" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "API" } th scope="col" { "Scopes" }
                        th scope="col" { "Rate limit" } th scope="col" { "Keys" }
                        th scope="col" { span class="visually-hidden" { "Actions" } }
                    } }
                    tbody {
                        @for (g, n) in list.iter().zip(&members) {
                            tr {
                                td data-label="Name" { strong { (g.name) } div class="muted small" { code { (g.id) } } }
                                td data-label="API" { (api_name(&g.api_id)) }
                                td data-label="Scopes" {
                                    @if g.scopes.is_empty() { span class="muted" { "None" } }
                                    @else { ul class="chips" { @for s in &g.scopes { li class="chip" { code { (s) } } } } }
                                }
                                td data-label="Rate limit" {
                                    @match &g.rate_limit {
                                        Some(rl) => { (rl.requests) " per " (rl.per_seconds) " s" },
                                        None => span class="muted" { "None" },
                                    }
                                }
                                td data-label="Keys" { (n) }
                                td class="row-actions" {
                                    @if can_write {
                                        button type="button" class="btn small" data-open={ "edit-group-" (g.id) } { "Edit" }
                                        @if *n == 0 {
                                            form method="post" action={ "/key-groups/" (g.id) "/delete" } class="inline-form" {
                                                (csrf_field(m))
                                                button type="submit" class="btn small danger" { "Delete" }
                                            }
                                        } @else {
                                            span class="muted small" title="Keys are in it: remove them first" { " In use" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_write {
            @for g in &list {
                @let id = format!("edit-group-{}", g.id);
                @if let Some(api) = all_apis.iter().find(|a| a.id == g.api_id) {
                    (group_dialog(m, GroupDialog { id: &id, title: "Edit key group",
                        action: &format!("/key-groups/{}/edit", g.id), submit: "Save changes",
                        apis: &[api], group: Some(g), correcting: state_of(&id) }))
                }
            }
            @if !protected.is_empty() {
                (group_dialog(m, GroupDialog { id: "create-group", title: "New key group",
                    action: "/key-groups", submit: "Create key group", apis: &protected,
                    group: None, correcting: state_of("create-group") }))
            }
        }
    };
    page(
        m,
        status,
        layout::shell(m, Nav::KeyGroups, "Key groups", content),
    )
}

struct GroupDialog<'a> {
    id: &'a str,
    title: &'a str,
    action: &'a str,
    submit: &'a str,
    /// The APIs offered (one when editing: a group's API never changes).
    apis: &'a [&'a Api],
    group: Option<&'a KeyGroup>,
    correcting: Option<&'a Correcting<'a>>,
}

fn group_dialog(m: &Member, d: GroupDialog<'_>) -> Markup {
    let id = d.id;
    let no_errors = FieldErrors::default();
    let errors = d.correcting.map_or(&no_errors, |c| &c.errors);
    let (name, api_id, scopes, rate_req, rate_per) = match (d.correcting, d.group) {
        (Some(c), _) => (
            c.form.text("name").to_owned(),
            c.form.text("api_id").to_owned(),
            c.form
                .all(&format!("scopes:{}", c.form.text("api_id")))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            c.form.text("rate_requests").to_owned(),
            c.form.text("rate_per").to_owned(),
        ),
        (None, Some(g)) => (
            g.name.clone(),
            g.api_id.clone(),
            g.scopes.clone(),
            g.rate_limit
                .map(|r| r.requests.to_string())
                .unwrap_or_default(),
            g.rate_limit
                .map(|r| r.per_seconds.to_string())
                .unwrap_or_default(),
        ),
        (None, None) => (
            String::new(),
            d.apis.first().map(|a| a.id.clone()).unwrap_or_default(),
            Vec::new(),
            String::new(),
            String::new(),
        ),
    };
    let scope_error = errors.of("scopes");
    html! {
        (dialog(id, d.title, d.correcting.is_some(), true, html! {
            form method="post" action=(d.action) class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&["name", "api_id", "scopes", "rate_limit"])))
                    (input(&format!("{id}-name"), "name", "Name", &name, errors, Input {
                        required: true, maxlength: Some(100), autofocus: true,
                        placeholder: Some("e.g. Read-only integrations"), ..Input::default() }))
                    @if d.group.is_none() && d.apis.len() > 1 {
                        (field(&format!("{id}-api"), "API", Some("Only keys of this API join the group. It cannot change later."), errors, "api_id", html! {
                            select id={ (id) "-api" } name="api_id" data-api-select aria-describedby=(described_by(&format!("{id}-api"), true)) {
                                @for a in d.apis { option value=(a.id) selected[a.id == api_id] { (a.name) } }
                            }
                        }))
                    } @else {
                        input type="hidden" name="api_id" value=(api_id);
                    }
                    @for a in d.apis {
                        @let current = a.id == api_id;
                        div class="api-options" data-api=(a.id) hidden[!current] {
                            fieldset class={ "field" @if scope_error.is_some() { " has-error" } } disabled[!current] {
                                legend { "Scopes" }
                                @if a.scopes.is_empty() {
                                    p class="hint" { "This API has no scopes yet." }
                                } @else {
                                    div class="checkbox-list" {
                                        @for (i, s) in a.scopes.iter().enumerate() {
                                            @let cid = format!("{id}-scope-{}-{i}", a.id);
                                            label class="checkbox" for=(cid) {
                                                input type="checkbox" id=(cid) name={ "scopes:" (a.id) } value=(s.name)
                                                    checked[current && scopes.contains(&s.name)];
                                                span { code { (s.name) } @if !s.description.is_empty() { span class="muted" { " — " (s.description) } } }
                                            }
                                        }
                                    }
                                }
                                p class="field-error" role="alert" hidden[scope_error.is_none()] {
                                    @if let Some(e) = &scope_error { (e) }
                                }
                            }
                        }
                    }
                    (rate_limit_fields(&format!("{id}-rate"), &rate_req, &rate_per, errors))
                    p class="hint" { "Applies to member keys that set no rate limit of their own." }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { (d.submit) }
                }
            }
        }))
    }
}

fn submitted_scopes(form: &FormData) -> Vec<String> {
    form.all(&format!("scopes:{}", form.text("api_id")))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

async fn create_group(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let mut errors = FieldErrors::default();
    let rate_limit = parse_rate_limit(&form, &mut errors);
    if errors.is_empty() {
        let input = CreateKeyGroup {
            name: form.text("name").trim().to_owned(),
            api_id: form.text("api_id").to_owned(),
            scopes: Some(submitted_scopes(&form)),
            rate_limit,
        };
        match groups::create(&state.ctx, &m.caller, input).await {
            Ok(g) => {
                return redirect_with_notice(&m, "/key-groups", &format!("Created {}.", g.name));
            }
            Err(e) => match service_errors(e, "name") {
                Ok(e) => errors = e,
                Err(e) => return error_page(Some(&m), e),
            },
        }
    }
    let c = Correcting {
        dialog: "create-group".into(),
        form: &form,
        errors,
    };
    render_groups(&state, &m, StatusCode::UNPROCESSABLE_ENTITY, Some(&c)).await
}

async fn edit_group(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let current = match groups::get(&state.ctx, &m.caller, &id).await {
        Ok(g) => g,
        Err(e) => return error_page(Some(&m), e),
    };
    let mut errors = FieldErrors::default();
    let rate_limit = parse_rate_limit(&form, &mut errors);
    if errors.is_empty() {
        let name = form.text("name").trim().to_owned();
        let scopes = submitted_scopes(&form);
        let patch = UpdateKeyGroup {
            name: (name != current.name).then_some(name),
            scopes: (scopes != current.scopes).then_some(scopes),
            rate_limit: (rate_limit != current.rate_limit).then_some(rate_limit),
        };
        match groups::update(&state.ctx, &m.caller, &id, patch).await {
            Ok(g) => {
                return redirect_with_notice(
                    &m,
                    "/key-groups",
                    &format!("Saved {}; every member key follows.", g.name),
                );
            }
            Err(e) => match service_errors(e, "name") {
                Ok(e) => errors = e,
                Err(e) => return error_page(Some(&m), e),
            },
        }
    }
    let c = Correcting {
        dialog: format!("edit-group-{id}"),
        form: &form,
        errors,
    };
    render_groups(&state, &m, StatusCode::UNPROCESSABLE_ENTITY, Some(&c)).await
}

async fn delete_group(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    match groups::delete(&state.ctx, &m.caller, &id).await {
        Ok(()) => redirect_with_notice(&m, "/key-groups", "Deleted the key group."),
        Err(e) => error_page(Some(&m), e),
    }
}
