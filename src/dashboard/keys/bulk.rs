//! Revoking several keys at once: the keys selected in the list, one confirmation that names how
//! many, then one request. The list's script confirms in a dialog; without it, the selection
//! comes here first and this page confirms.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::masked;
use crate::dashboard::layout::{self, Input, Nav, csrf_field, input, page_header};
use crate::dashboard::{
    FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice,
};
use crate::http::AppState;
use crate::service::ServiceError;
use crate::service::keys::{self, BULK_MAX, RevokeKey};

/// Where to go back to: a page of the list, never another site. The list writes its addresses
/// percent-encoded; anything else (which could not even be a `Location` header) is not one.
fn return_to(form: &FormData) -> String {
    match form.get("return") {
        Some(r)
            if (r == "/keys" || r.starts_with("/keys?"))
                && r.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            r.to_owned()
        }
        _ => "/keys".to_owned(),
    }
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 key".to_owned()
    } else {
        format!("{n} keys")
    }
}

/// `GET /keys/revoke?id=...&id=...`: the confirmation, for browsers without the script.
pub(super) async fn confirm_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    RawQuery(query): RawQuery,
) -> Response {
    let q = FormData::parse(query.unwrap_or_default().as_bytes());
    let back = return_to(&q);
    let mut ids: Vec<&str> = q.all("id");
    ids.dedup();
    if ids.is_empty() {
        return redirect_with_notice(&m, &back, "Select the keys to revoke first.");
    }
    let mut selected = Vec::new();
    for id in ids.iter().take(BULK_MAX) {
        match keys::get(&state.ctx, &m.caller, id).await {
            Ok(k) => selected.push(k),
            Err(e) => return error_page(Some(&m), e),
        }
    }
    let count = plural(selected.len());
    let content = html! {
        nav class="breadcrumb" aria-label="Breadcrumb" {
            a href=(back) { "API keys" } span aria-hidden="true" { " / " } span aria-current="page" { "Revoke keys" }
        }
        (page_header(&format!("Revoke {count}?"), None, html! {}))
        section class="card confirm-card" {
            form method="post" action="/keys/revoke" {
                (csrf_field(&m))
                input type="hidden" name="return" value=(back);
                p { "Every request that uses these keys is refused at once. They stay in the list as revoked." }
                ul class="bulk-names" {
                    @for k in &selected {
                        li {
                            input type="hidden" name="id" value=(k.id);
                            strong { (k.name) } " " code class="prefix" { (masked(k)) }
                        }
                    }
                }
                (input("bulk-reason", "reason", "Reason (optional)", "", &FieldErrors::default(), Input {
                    maxlength: Some(500), placeholder: Some("e.g. contractor left"),
                    hint: Some("Kept in the audit log with each key."), ..Input::default() }))
                div class="form-actions" {
                    a class="btn" href=(back) { "Cancel" }
                    button type="submit" class="btn danger" { "Revoke " (count) }
                }
            }
        }
    };
    page(
        &m,
        StatusCode::OK,
        layout::shell(&m, Nav::Keys, "Revoke keys", content),
    )
}

/// `POST /keys/revoke`: revokes every key selected, or none when one of them is not the member's
/// to revoke.
pub(super) async fn revoke_selected(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let back = return_to(&form);
    let ids: Vec<String> = form.all("id").into_iter().map(str::to_owned).collect();
    if ids.is_empty() {
        return redirect_with_notice(&m, &back, "No keys were selected; nothing was revoked.");
    }
    let input = RevokeKey {
        reason: form.non_empty("reason"),
    };
    match keys::revoke_many(&state.ctx, &m.caller, &ids, input).await {
        Ok(done) => {
            let mut notice = format!("Revoked {}.", plural(done.revoked.len()));
            if done.already > 0 {
                notice.push_str(&format!(
                    " {} had already stopped working.",
                    plural(done.already)
                ));
            }
            redirect_with_notice(&m, &back, &notice)
        }
        Err(ServiceError::Forbidden(why)) => error_page(
            Some(&m),
            ServiceError::Forbidden(format!("{why} None of the selected keys was revoked.")),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_revoke_returns_only_to_the_list() {
        let f = |r: &str| return_to(&FormData::parse(format!("return={r}").as_bytes()));
        assert_eq!(f("%2Fkeys%3Fq%3Dx%26page%3D2"), "/keys?q=x&page=2");
        assert_eq!(f("%2F%2Fevil.example"), "/keys");
        assert_eq!(f("%2Fkeysevil"), "/keys");
        assert_eq!(f("https%3A%2F%2Fevil.example%2Fkeys"), "/keys");
        assert_eq!(
            f("%2Fkeys%3Fq%3D%C3%A9"),
            "/keys",
            "not as the list writes it"
        );
        assert_eq!(f("%2Fkeys%3Fq%3Da%0D%0ASet-Cookie%3A+x"), "/keys");
    }
}
