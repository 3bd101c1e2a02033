//! APIs: the services keys are issued for, with their key prefixes, token types, accepted headers
//! and scope catalogue; created and edited here by members allowed to (`apis:write`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::gateway::{self, GatewayForm};
use super::keys::{parse_rate_limit, rate_limit_fields};
use super::layout::{self, Input, Nav, csrf_field, dialog, form_errors, input, page_header};
use super::scopes::{
    TOKEN_TYPES, parse_scopes, parse_token_types, scope_editor, token_type_checkboxes,
};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::domain::model::{Api, ScopeDef};
use crate::http::AppState;
use crate::service::apis::{self, CreateApi, PrefixInput, UpdateApi};
use crate::service::{ServiceError, authz};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/apis", get(apis_page).post(create))
        .route("/apis/{id}/edit", post(edit))
}

/// A submitted form shown again to be corrected: the dialog it came from, what was typed and what
/// was wrong.
struct Correcting<'a> {
    dialog: String,
    form: &'a FormData,
    errors: FieldErrors,
}

/// What an API form shows.
struct Values {
    name: String,
    slug: String,
    live: String,
    test: String,
    token_types: Vec<String>,
    accept_x_api_key: bool,
    rate_requests: String,
    rate_per: String,
    scopes: Vec<ScopeDef>,
    gateway: GatewayForm,
}

impl Values {
    fn new_api() -> Values {
        Values {
            name: String::new(),
            slug: String::new(),
            live: "kw_live_".into(),
            test: "kw_test_".into(),
            token_types: TOKEN_TYPES.iter().map(|(t, _)| (*t).to_owned()).collect(),
            accept_x_api_key: false,
            rate_requests: String::new(),
            rate_per: String::new(),
            scopes: Vec::new(),
            gateway: GatewayForm::new_api(),
        }
    }

    fn of_api(a: &Api) -> Values {
        Values {
            name: a.name.clone(),
            slug: a.slug.clone(),
            live: a.prefix_live.clone(),
            test: a.prefix_test.clone(),
            token_types: a.token_types.clone(),
            accept_x_api_key: a.accept_x_api_key,
            rate_requests: a
                .default_rate_limit
                .map(|r| r.requests.to_string())
                .unwrap_or_default(),
            rate_per: a
                .default_rate_limit
                .map(|r| r.per_seconds.to_string())
                .unwrap_or_default(),
            scopes: a.scopes.clone(),
            gateway: GatewayForm::of_api(a),
        }
    }

    fn of_form(f: &FormData) -> Values {
        Values {
            name: f.text("name").into(),
            slug: f.text("slug").into(),
            live: f.text("key_prefix.live").into(),
            test: f.text("key_prefix.test").into(),
            token_types: parse_token_types(f),
            accept_x_api_key: f.has("accept_x_api_key"),
            rate_requests: f.text("rate_requests").into(),
            rate_per: f.text("rate_per").into(),
            scopes: parse_scopes(f),
            gateway: GatewayForm::of_form(f),
        }
    }
}

/// The service's errors, named as the form's fields (the default rate limit is the form's
/// `rate_limit`).
fn form_field_errors(errors: FieldErrors) -> FieldErrors {
    FieldErrors(
        errors
            .0
            .into_iter()
            .map(|(f, m)| match f.strip_prefix("default_rate_limit") {
                Some(rest) => (format!("rate_limit{rest}"), m),
                None => (f, m),
            })
            .collect(),
    )
}

async fn apis_page(State(state): State<Arc<AppState>>, m: Member) -> Response {
    render(&state, &m, StatusCode::OK, None).await
}

/// The page again (422) with the dialog `dialog` open, showing what was submitted and its errors.
async fn show_again(
    state: &AppState,
    m: &Member,
    dialog: String,
    form: &FormData,
    errors: FieldErrors,
) -> Response {
    let correcting = Correcting {
        dialog,
        form,
        errors,
    };
    render(
        state,
        m,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(&correcting),
    )
    .await
}

async fn render(
    state: &AppState,
    m: &Member,
    status: StatusCode,
    correcting: Option<&Correcting<'_>>,
) -> Response {
    let mut list = match apis::list(&state.ctx, &m.caller).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(m), e),
    };
    // The organization's own APIs first, Keyward's management API last.
    list.sort_by_key(|a| a.is_management());
    page(
        m,
        status,
        layout::shell(m, Nav::Apis, "APIs", render_page(m, &list, correcting)),
    )
}

fn render_page(m: &Member, list: &[Api], correcting: Option<&Correcting<'_>>) -> Markup {
    let can_write = m.actions.create_apis;
    // The values and errors of the dialog `id`: as submitted when it is being corrected.
    let state_of = |id: &str| correcting.filter(|c| c.dialog == id);
    let no_errors = FieldErrors::default();
    html! {
        (page_header("APIs", Some(html! {
            "The services your keys protect. Each has its own key prefix, token types and scope catalogue."
        }), html! {
            @if can_write { button type="button" class="btn primary" data-open="create-api" { "+ New API" } }
        }))
        @for a in list {
            section class="card api-card" aria-labelledby={ "api-" (a.id) } {
                div class="card-header" {
                    h2 id={ "api-" (a.id) } {
                        (a.name)
                        @if a.is_management() { " " span class="badge neutral" { "built-in" } }
                    }
                    div class="card-actions" {
                        code class="muted" { (a.id) }
                        @if authz::may_edit_api(&m.caller, a) {
                            button type="button" class="btn small" data-open={ "edit-api-" (a.id) } { "Edit" }
                        }
                    }
                }
                dl class="props" {
                    dt { "Slug" } dd { code { (a.slug) } }
                    dt { "Key prefixes" } dd {
                        "live " code { (a.prefix_live) } " · test " code { (a.prefix_test) }
                        div class="muted small" { "A key looks like " code { (a.prefix_live) "3f9a0c1e7b2d…" } " and is listed as " code { (a.prefix_live) "3f9a0c1e7b2d••••" } "." }
                    }
                    dt { "Token types" } dd {
                        ul class="chips" { @for t in &a.token_types { li class="chip" { (t) } } }
                    }
                    dt { "Accepted headers" } dd {
                        ul class="plain-list" {
                            li { code { "Authorization: Bearer <key>" } }
                            @if a.accept_x_api_key { li { code { "x-api-key: <key>" } } }
                        }
                    }
                    dt { "Default rate limit" } dd {
                        @match &a.default_rate_limit {
                            Some(rl) => { (rl.requests) " requests per " (rl.per_seconds) " s" },
                            None => span class="muted" { "None" },
                        }
                    }
                }
                h3 { "Scopes" }
                @if a.scopes.is_empty() {
                    p class="muted" {
                        "No scopes yet: keys of this API carry none, so a verification cannot tell them apart by what they may do."
                    }
                    @if authz::may_edit_api(&m.caller, a) {
                        button type="button" class="btn small" data-open={ "edit-api-" (a.id) } { "+ Add scopes" }
                    }
                } @else {
                    div class="table-wrap" {
                        table class="table compact" {
                            caption class="visually-hidden" { "Scopes of " (a.name) }
                            thead { tr { th scope="col" class="col-scope" { "Scope" } th scope="col" { "Description" } } }
                            tbody {
                                @for s in &a.scopes {
                                    tr { td data-label="Scope" { code { (s.name) } } td data-label="Description" { (s.description) } }
                                }
                            }
                        }
                    }
                }
                (gateway::card(a))
            }
            @if authz::may_edit_api(&m.caller, a) {
                @let id = format!("edit-api-{}", a.id);
                @let st = state_of(&id);
                (api_dialog(m, ApiDialog {
                    id: &id,
                    title: "Edit API",
                    action: &format!("/apis/{}/edit", a.id),
                    submit: "Save changes",
                    creating: false,
                    values: &st.map_or_else(|| Values::of_api(a), |c| Values::of_form(c.form)),
                    errors: st.map_or(&no_errors, |c| &c.errors),
                    open: st.is_some(),
                }))
            }
        }
        @if can_write {
            @let st = state_of("create-api");
            (api_dialog(m, ApiDialog {
                id: "create-api",
                title: "New API",
                action: "/apis",
                submit: "Create API",
                creating: true,
                values: &st.map_or_else(Values::new_api, |c| Values::of_form(c.form)),
                errors: st.map_or(&no_errors, |c| &c.errors),
                open: st.is_some(),
            }))
        }
    }
}

struct ApiDialog<'a> {
    id: &'a str,
    title: &'a str,
    action: &'a str,
    submit: &'a str,
    /// The slug is chosen at creation and never changes.
    creating: bool,
    values: &'a Values,
    errors: &'a FieldErrors,
    open: bool,
}

fn api_dialog(m: &Member, d: ApiDialog<'_>) -> Markup {
    let (id, v, errors) = (d.id, d.values, d.errors);
    let shown = [
        "name",
        "slug",
        "key_prefix",
        "token_types",
        "accept_x_api_key",
        "rate_limit",
        "scopes",
        gateway::FIELDS[0],
        gateway::FIELDS[1],
        gateway::FIELDS[2],
    ];
    let prefix_hint = "2 to 16 lowercase letters and digits in one or two groups, each ending in '_' or '-', e.g. tk_live_.";
    html! {
        (dialog(id, d.title, d.open, true, html! {
            form method="post" action=(d.action) class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&shown)))
                    (input(&format!("{id}-name"), "name", "Name", &v.name, errors, Input {
                        required: true, maxlength: Some(100), autofocus: true,
                        placeholder: Some("e.g. Transcription API"), ..Input::default() }))
                    @if d.creating {
                        (input(&format!("{id}-slug"), "slug", "Slug", &v.slug, errors, Input {
                            required: true, maxlength: Some(63), placeholder: Some("e.g. transcription"),
                            hint: Some("Lowercase letters, digits and '-', unique in the organization. It cannot be changed later."),
                            ..Input::default() }))
                    }
                    (input(&format!("{id}-live"), "key_prefix.live", "Live key prefix", &v.live, errors, Input {
                        required: true, maxlength: Some(16), hint: Some(prefix_hint), ..Input::default() }))
                    (input(&format!("{id}-test"), "key_prefix.test", "Test key prefix", &v.test, errors, Input {
                        required: true, maxlength: Some(16), ..Input::default() }))
                    (token_type_checkboxes(&format!("{id}-types"), &v.token_types, errors))
                    label class="checkbox" for={ (id) "-x-api-key" } {
                        input type="checkbox" id={ (id) "-x-api-key" } name="accept_x_api_key" value="true"
                            checked[v.accept_x_api_key];
                        span { "Also accept keys in an " code { "x-api-key" } " header (" code { "Authorization: Bearer" } " always works)" }
                    }
                    (rate_limit_fields(&format!("{id}-rate"), &v.rate_requests, &v.rate_per, errors))
                    p class="hint" { "The rate limit of this API's keys that have none of their own." }
                    (scope_editor(&format!("{id}-scopes"), &v.scopes, errors))
                    (gateway::fields(id, &v.gateway, errors))
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { (d.submit) }
                }
            }
        }))
    }
}

async fn create(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let mut errors = FieldErrors::default();
    let default_rate_limit = parse_rate_limit(&form, &mut errors);
    let gateway = gateway::parse(&form, &mut errors);
    let input = CreateApi {
        name: form.text("name").trim().to_owned(),
        slug: form.text("slug").trim().to_owned(),
        key_prefix: Some(PrefixInput {
            live: Some(form.text("key_prefix.live").trim().to_owned()),
            test: Some(form.text("key_prefix.test").trim().to_owned()),
        }),
        scopes: Some(parse_scopes(&form)),
        token_types: Some(parse_token_types(&form)),
        accept_x_api_key: Some(form.has("accept_x_api_key")),
        default_rate_limit,
        upstream: gateway.as_ref().and_then(|g| g.upstream.clone()),
        hosts: gateway.as_ref().map(|g| g.hosts.clone()),
        routes: gateway.as_ref().map(|g| g.routes.clone()),
    };
    if errors.is_empty() {
        match apis::create(&state.ctx, &m.caller, input).await {
            Ok(api) => {
                return redirect_with_notice(&m, "/apis", &format!("Created {}.", api.name));
            }
            Err(ServiceError::Validation(e)) => {
                errors = form_field_errors(e.into());
                if let Some(g) = &gateway {
                    errors = g.errors_by_row(errors);
                }
            }
            Err(ServiceError::Conflict(d)) => errors.add("slug", d),
            Err(e) => return error_page(Some(&m), e),
        }
    }
    show_again(&state, &m, "create-api".into(), &form, errors).await
}

/// The changes the edit form makes to `api`: only what differs, so that the audit log names what
/// really changed. Also the gateway section as submitted, for errors about its routes.
fn parse_edit(form: &FormData, api: &Api) -> (UpdateApi, FieldErrors, Option<gateway::Submitted>) {
    let mut errors = FieldErrors::default();
    let mut patch = UpdateApi::default();
    let name = form.text("name").trim();
    if name != api.name {
        patch.name = Some(name.to_owned());
    }
    let live = form.text("key_prefix.live").trim();
    let test = form.text("key_prefix.test").trim();
    if live != api.prefix_live || test != api.prefix_test {
        patch.key_prefix = Some(PrefixInput {
            live: (live != api.prefix_live).then(|| live.to_owned()),
            test: (test != api.prefix_test).then(|| test.to_owned()),
        });
    }
    let token_types = parse_token_types(form);
    if token_types != api.token_types {
        patch.token_types = Some(token_types);
    }
    let accept = form.has("accept_x_api_key");
    if accept != api.accept_x_api_key {
        patch.accept_x_api_key = Some(accept);
    }
    let rate_limit = parse_rate_limit(form, &mut errors);
    if rate_limit != api.default_rate_limit {
        patch.default_rate_limit = Some(rate_limit);
    }
    let scopes = parse_scopes(form);
    if scopes != api.scopes {
        patch.scopes = Some(scopes);
    }
    let gateway = gateway::parse(form, &mut errors);
    if let Some(g) = &gateway {
        if g.upstream != api.upstream {
            patch.upstream = Some(g.upstream.clone());
        }
        if g.hosts != api.hosts {
            patch.hosts = Some(g.hosts.clone());
        }
        if g.routes != api.routes {
            patch.routes = Some(g.routes.clone());
        }
    }
    (patch, errors, gateway)
}

async fn edit(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let api = match apis::get(&state.ctx, &m.caller, &id).await {
        Ok(a) => a,
        Err(e) => return error_page(Some(&m), e),
    };
    let (patch, mut errors, gateway) = parse_edit(&form, &api);
    if errors.is_empty() {
        match apis::update(&state.ctx, &m.caller, &id, patch).await {
            Ok(a) => {
                return redirect_with_notice(
                    &m,
                    "/apis",
                    &format!("Saved the changes to {}.", a.name),
                );
            }
            Err(ServiceError::Validation(e)) => {
                errors = form_field_errors(e.into());
                if let Some(g) = &gateway {
                    errors = g.errors_by_row(errors);
                }
            }
            Err(ServiceError::Conflict(d)) => errors.add("form", d),
            Err(e) => return error_page(Some(&m), e),
        }
    }
    show_again(&state, &m, format!("edit-api-{}", api.id), &form, errors).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_shows_again_what_was_typed() {
        let f = FormData::parse(
            b"name=Search&scope_name=search%3Aquery&scope_description=Run+searches\
              &scope_name=&scope_description=&token_types=standard&token_types_other=cron",
        );
        let v = Values::of_form(&f);
        assert_eq!(
            v.scopes,
            vec![ScopeDef {
                name: "search:query".into(),
                description: "Run searches".into()
            }]
        );
        assert_eq!(v.token_types, ["standard", "cron"]);
    }
}
