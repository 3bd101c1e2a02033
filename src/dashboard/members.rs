//! Members: who can sign in, with which role; invitations (one-time links), role changes,
//! disabling and removing members.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::layout::{
    self, Input, Nav, badge, csrf_field, described_by, dialog, field, form_errors, input,
    page_header, time_date,
};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::domain::model::{Millis, Role, User, UserStatus};
use crate::http::AppState;
use crate::service::sessions::{self, Purpose};
use crate::service::users::{self, CreateUser, UpdateUser};
use crate::service::{ServiceError, authz};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/members", get(members_page).post(invite))
        .route("/members/{id}/role", post(change_role))
        .route("/members/{id}/status", post(change_status))
        .route("/members/{id}/invite", post(new_link))
        .route("/members/{id}/delete", post(remove))
}

const ROLES: &[(Role, &str)] = &[
    (
        Role::Owner,
        "Everything, including other owners and billing.",
    ),
    (
        Role::Admin,
        "Everything in the organization except owners: members, keys, APIs, policies.",
    ),
    (
        Role::Developer,
        "Creates keys; edits, rotates and deletes their own; reads the audit log.",
    ),
    (
        Role::Viewer,
        "Reads keys, usage and the audit log. Changes nothing.",
    ),
];

/// Roles the member may hand out, with what each may do.
fn grantable(m: &Member) -> impl Iterator<Item = &'static (Role, &'static str)> {
    let assignable = authz::assignable_roles(&m.caller);
    ROLES.iter().filter(move |(r, _)| assignable.contains(r))
}

/// A member's status; an active member who has not set a password yet is still invited.
fn status_badge(u: &User, pending: &HashMap<String, Option<Millis>>, now: Millis) -> Markup {
    match (u.status, pending.get(&u.id)) {
        (UserStatus::Active, Some(link)) => html! {
            span class="badge warning" title="Invited: has not set a password yet, so cannot sign in" { "Invited" }
            div class="muted small" {
                @match link {
                    Some(t) => { "Link expires " (layout::relative(now, *t)) },
                    None => "Link expired or used: make a new one",
                }
            }
        },
        (UserStatus::Active, None) => badge("success", "Active"),
        (UserStatus::Disabled, _) => badge("neutral", "Disabled"),
        (UserStatus::Deleted, _) => badge("danger", "Removed"),
    }
}

/// The invite dialog's state after a refused submission.
struct InviteState<'a> {
    form: &'a FormData,
    errors: FieldErrors,
}

/// A sign-in link just made, shown once.
struct Link<'a> {
    user: &'a User,
    url: String,
}

async fn members_page(State(state): State<Arc<AppState>>, m: Member) -> Response {
    render(&state, &m, StatusCode::OK, None, None).await
}

async fn render(
    state: &AppState,
    m: &Member,
    status: StatusCode,
    invite: Option<&InviteState<'_>>,
    link: Option<&Link<'_>>,
) -> Response {
    let loaded = match users::list(&state.ctx, &m.caller).await {
        Ok(list) => users::pending(&state.ctx, &m.caller)
            .await
            .map(|pending| (list, pending)),
        Err(e) => Err(e),
    };
    match loaded {
        Ok((list, pending)) => page(m, status, render_page(m, &list, &pending, invite, link)),
        Err(e) => error_page(Some(m), e),
    }
}

fn render_page(
    m: &Member,
    list: &[User],
    pending: &HashMap<String, Option<Millis>>,
    invite: Option<&InviteState<'_>>,
    link: Option<&Link<'_>>,
) -> Markup {
    let can_write = m.actions.manage_members;
    let services: Vec<&User> = list.iter().filter(|u| u.is_service()).collect();
    let content = html! {
        (page_header("Members", Some(html! {
            "People who can sign in to this dashboard, and service accounts that own integration keys. Disabling or removing a member revokes their keys."
        }), html! {
            @if can_write { button type="button" class="btn primary" data-open="invite-member" { "+ Invite member" } }
        }))
        div class="table-wrap" {
            table class="table members-table" {
                caption class="visually-hidden" { "Members" }
                thead { tr {
                    th scope="col" { "Member" } th scope="col" { "Role" } th scope="col" { "Status" }
                    th scope="col" { "Added" } th scope="col" { span class="visually-hidden" { "Actions" } }
                } }
                tbody {
                    @for u in list.iter().filter(|u| !u.is_service()) { (member_row(m, u, pending)) }
                }
            }
        }
        section class="card" aria-labelledby="service-accounts-title" id="service-accounts" {
            div class="card-header" {
                h2 id="service-accounts-title" { "Service accounts" }
                @if can_write { button type="button" class="btn small" data-open="new-service-account" { "+ New service account" } }
            }
            p class="hint" { "Owners of integration keys. A service account never signs in, and its keys keep working when the person who set them up leaves." }
            @if services.is_empty() {
                p class="muted" { "No service accounts yet." }
            } @else {
                div class="table-wrap" {
                    table class="table members-table" {
                        caption class="visually-hidden" { "Service accounts" }
                        thead { tr {
                            th scope="col" { "Service account" } th scope="col" { "Role" } th scope="col" { "Status" }
                            th scope="col" { "Added" } th scope="col" { span class="visually-hidden" { "Actions" } }
                        } }
                        tbody {
                            @for u in &services { (member_row(m, u, pending)) }
                        }
                    }
                }
            }
        }
        section class="card" aria-labelledby="roles-title" {
            h2 id="roles-title" { "Roles" }
            dl class="props" {
                @for (r, d) in ROLES { dt { (r.as_str()) } dd { (d) } }
            }
            p class="hint" { "A key created by a member never does more than the member's role allows." }
        }
        @if can_write {
            (invite_dialog(m, invite))
            (service_dialog(m, invite))
            (role_dialog(m))
            (confirm_dialog(m, "disable-member", "Disable member", "Disable",
                html! { "Disable " strong data-fill="name" {} "? They can no longer sign in, and every key they own is revoked at once. Enabling them later does not bring the keys back." },
                html! { input type="hidden" name="status" value="disabled"; }))
            (confirm_dialog(m, "remove-member", "Remove member", "Remove member",
                html! { "Remove " strong data-fill="name" {} "? Their keys are revoked at once. This cannot be undone." },
                html! {}))
        }
        @if let Some(l) = link { (link_dialog(l)) }
    };
    layout::shell(m, Nav::Members, "Members", content)
}

fn member_row(m: &Member, u: &User, pending: &HashMap<String, Option<Millis>>) -> Markup {
    let may = authz::member_actions(&m.caller, u);
    html! {
                tr {
                    td data-label="Member" {
                        strong { (u.name) }
                        @if u.id == m.caller.user.id { " " span class="badge neutral" { "you" } }
                        div class="muted small" { @if u.is_service() { "service account" } @else { (u.label()) } }
                    }
                    td data-label="Role" { (u.role.as_str()) }
                    td data-label="Status" { (status_badge(u, pending, m.now)) }
                    td data-label="Added" { (time_date(u.created_at)) }
                    td class="row-actions" {
                        @if may.any() {
                            details class="menu" {
                                summary class="btn small ghost icon-menu" aria-label={ "Actions for " (u.label()) } title="Actions" { "⋯" }
                                div class="menu-items" {
                                    @if may.change_role {
                                        button type="button" data-open="role-member" data-fill-name=(u.label())
                                            data-fill-role=(u.role.as_str())
                                            data-fill-action={ "/members/" (u.id) "/role" } { "Change role" }
                                    }
                                    @if may.new_sign_in_link {
                                        form method="post" action={ "/members/" (u.id) "/invite" } {
                                            (csrf_field(m))
                                            button type="submit" {
                                                @if pending.contains_key(&u.id) { "New invitation link" } @else { "New sign-in link" }
                                            }
                                        }
                                    }
                                    @if may.disable {
                                        button type="button" data-open="disable-member" data-fill-name=(u.label())
                                            data-fill-action={ "/members/" (u.id) "/status" } { "Disable" }
                                    }
                                    @if may.enable {
                                        form method="post" action={ "/members/" (u.id) "/status" } {
                                            (csrf_field(m))
                                            input type="hidden" name="status" value="active";
                                            button type="submit" { "Enable" }
                                        }
                                    }
                                    @if may.remove {
                                        button type="button" class="danger-text" data-open="remove-member"
                                            data-fill-name=(u.label())
                                            data-fill-action={ "/members/" (u.id) "/delete" } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }

    }
}

fn invite_dialog(m: &Member, state: Option<&InviteState<'_>>) -> Markup {
    let empty = FormData::default();
    let none = FieldErrors::default();
    let (form, errors) = match state {
        Some(s) => (s.form, &s.errors),
        None => (&empty, &none),
    };
    let role = form.get("role").unwrap_or("developer");
    dialog(
        "invite-member",
        "Invite member",
        state.is_some_and(|s| s.form.get("kind") != Some("service")),
        false,
        html! {
            form method="post" action="/members" class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&["email", "name", "role"])))
                    (input("invite-email", "email", "Email", form.text("email"), errors, Input {
                        kind: "email", required: true, autofocus: true, autocomplete: Some("off"), ..Input::default() }))
                    (input("invite-name", "name", "Name", form.text("name"), errors, Input {
                        required: true, maxlength: Some(100), ..Input::default() }))
                    (field("invite-role", "Role", None, errors, "role", html! {
                        select id="invite-role" name="role" aria-describedby=(described_by("invite-role", false)) {
                            @for (r, d) in grantable(m) {
                                option value=(r.as_str()) selected[role == r.as_str()] { (r.as_str()) " — " (d) }
                            }
                        }
                    }))
                    p class="hint" { "You get a one-time link to send them; with it they choose their password. It expires in " (Purpose::Invite.ttl_text()) "." }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Invite" }
                }
            }
        },
    )
}

/// The dialog that adds a service account: a name and a role, no email, no password.
fn service_dialog(m: &Member, state: Option<&InviteState<'_>>) -> Markup {
    let empty = FormData::default();
    let none = FieldErrors::default();
    let state = state.filter(|s| s.form.get("kind") == Some("service"));
    let (form, errors) = match state {
        Some(s) => (s.form, &s.errors),
        None => (&empty, &none),
    };
    let role = form.get("role").unwrap_or("developer");
    dialog(
        "new-service-account",
        "New service account",
        state.is_some(),
        false,
        html! {
            form method="post" action="/members" class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    input type="hidden" name="kind" value="service";
                    (form_errors(&errors.others(&["name", "role"])))
                    (input("service-name", "name", "Name", form.text("name"), errors, Input {
                        required: true, maxlength: Some(100), autofocus: true,
                        placeholder: Some("e.g. CI integration"), ..Input::default() }))
                    (field("service-role", "Role", Some("A management key it owns acts within this role."), errors, "role", html! {
                        select id="service-role" name="role" aria-describedby=(described_by("service-role", true)) {
                            @for (r, d) in grantable(m) {
                                option value=(r.as_str()) selected[role == r.as_str()] { (r.as_str()) " — " (d) }
                            }
                        }
                    }))
                    p class="hint" { "It has no email and no password and never signs in. Give it keys from the create-key dialog (More options → Owner)." }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Create service account" }
                }
            }
        },
    )
}

fn role_dialog(m: &Member) -> Markup {
    dialog(
        "role-member",
        "Change role",
        false,
        false,
        html! {
            form method="post" action="" class="dialog-form" {
                div class="dialog-body" {
                    (csrf_field(m))
                    p { "Role of " strong data-fill="name" {} ":" }
                    div class="field" {
                        label for="role-select" { "Role" }
                        select id="role-select" name="role" {
                            @for (r, d) in grantable(m) { option value=(r.as_str()) { (r.as_str()) " — " (d) } }
                        }
                    }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Save role" }
                }
            }
        },
    )
}

fn confirm_dialog(
    m: &Member,
    id: &str,
    title: &str,
    confirm: &str,
    text: Markup,
    hidden: Markup,
) -> Markup {
    dialog(
        id,
        title,
        false,
        false,
        html! {
            form method="post" action="" class="dialog-form" {
                div class="dialog-body" {
                    (csrf_field(m))
                    (hidden)
                    p { (text) }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close autofocus { "Cancel" }
                    button type="submit" class="btn danger" { (confirm) }
                }
            }
        },
    )
}

fn link_dialog(l: &Link<'_>) -> Markup {
    dialog(
        "member-link",
        "Sign-in link",
        true,
        false,
        html! {
            div class="dialog-body" data-return="/members" {
                p { "Send this link to " strong { (l.user.email) } ". With it they choose their password and sign in as " strong { (l.user.role.as_str()) } "." }
                div class="notice warning" role="alert" {
                    "It works once, expires in " (Purpose::Invite.ttl_text()) ", and is not shown again. Anyone with the link can claim the account: send it privately."
                }
                label for="member-link-url" { "Link" }
                div class="copy-row" {
                    input id="member-link-url" class="mono secret" type="text" readonly value=(l.url) data-secret autocomplete="off";
                    button type="button" class="btn primary" data-copy="member-link-url" { "Copy" }
                }
                p class="hint" role="status" data-copy-status {}
            }
            div class="dialog-footer" {
                button type="button" class="btn" data-close { "Done" }
            }
        },
    )
}

async fn invite(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let service = form.get("kind") == Some("service");
    let input = CreateUser {
        kind: service.then(|| "service".to_owned()),
        email: (!service).then(|| form.text("email").to_owned()),
        name: form.text("name").to_owned(),
        role: Some(form.text("role").to_owned()),
        password: None,
    };
    let errors: FieldErrors = match users::create(&state.ctx, &m.caller, input).await {
        Ok(user) if user.is_service() => {
            return redirect_with_notice(
                &m,
                "/members#service-accounts",
                &format!("Created the service account {}.", user.name),
            );
        }
        Ok(user) => return link_page(&state, &m, &user).await,
        Err(ServiceError::Validation(e)) => e.into(),
        Err(ServiceError::Conflict(d)) => {
            let mut e = FieldErrors::default();
            e.add("email", d);
            e
        }
        Err(e) => return error_page(Some(&m), e),
    };
    let st = InviteState {
        form: &form,
        errors,
    };
    render(
        &state,
        &m,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(&st),
        None,
    )
    .await
}

/// Makes a sign-in link for `user` and shows it once.
async fn link_page(state: &AppState, m: &Member, user: &User) -> Response {
    match sessions::invite(&state.ctx, &m.caller, &user.id).await {
        Ok(token) => {
            let link = Link {
                user,
                url: sessions::setup_url(&state.public_url, &token),
            };
            render(state, m, StatusCode::CREATED, None, Some(&link)).await
        }
        Err(e) => error_page(Some(m), e),
    }
}

async fn new_link(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    match users::get(&state.ctx, &m.caller, &id).await {
        Ok(user) => link_page(&state, &m, &user).await,
        Err(e) => error_page(Some(&m), e),
    }
}

async fn change_role(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let input = UpdateUser {
        role: Some(form.text("role").to_owned()),
        ..UpdateUser::default()
    };
    match users::update(&state.ctx, &m.caller, &id, input).await {
        Ok(u) => redirect_with_notice(
            &m,
            "/members",
            &format!("{} is now {}.", u.label(), u.role.as_str()),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}

async fn change_status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let input = UpdateUser {
        status: Some(form.text("status").to_owned()),
        ..UpdateUser::default()
    };
    match users::update(&state.ctx, &m.caller, &id, input).await {
        Ok(u) => {
            // A disabled member's sessions end too: every request checks the member's status.
            let notice = if u.status == UserStatus::Active {
                format!("Enabled {}; they can sign in again.", u.label())
            } else {
                format!("Disabled {}; their keys are revoked.", u.label())
            };
            redirect_with_notice(&m, "/members", &notice)
        }
        Err(e) => error_page(Some(&m), e),
    }
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    let user = match users::get(&state.ctx, &m.caller, &id).await {
        Ok(u) => u,
        Err(e) => return error_page(Some(&m), e),
    };
    match users::delete(&state.ctx, &m.caller, &id).await {
        Ok(()) => redirect_with_notice(
            &m,
            "/members",
            &format!("Removed {}; their keys are revoked.", user.label()),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}
