//! The page shell (sidebar, account menu, notices) and the small components every page uses:
//! form fields with their errors, badges, dialogs, dates.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;

use super::{FieldErrors, Member};
use crate::domain::model::Millis;
use crate::http::views::rfc3339;

/// The sections of the sidebar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Keys,
    Usage,
    Audit,
    SecurityEvents,
    Members,
    Org,
    Apis,
    IpAcls,
    KeyGroups,
    Webhooks,
    Profile,
    /// A page of no section (not found).
    None,
}

fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light";
            @if let Some(csrf) = csrf {
                meta name="csrf-token" content=(csrf);
            }
            title { (title) " · Keyward" }
            link rel="stylesheet" href=(super::assets::CSS_PATH);
            link rel="icon" href=(super::assets::ICON_PATH) type="image/svg+xml";
            script src=(super::assets::JS_PATH) defer {}
        }
    }
}

pub fn logo() -> Markup {
    html! {
        svg class="logo" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false" {
            rect x="1" y="1" width="22" height="22" rx="6" fill="currentColor" {}
            path d="M14.5 6.5a3.5 3.5 0 0 0-3.3 4.6L6.5 15.8V18h2.2v-1.3H10v-1.3h1.3l1.6-1.6A3.5 3.5 0 1 0 14.5 6.5Zm.7 2.2a.9.9 0 1 1 0 1.8.9.9 0 0 1 0-1.8Z" fill="#fff" {}
        }
    }
}

/// A whole page for a signed-in member.
pub fn shell(m: &Member, nav: Nav, title: &str, content: Markup) -> Markup {
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            li {
                a href=(href) aria-current=[(target == nav).then_some("page")] { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, Some(&m.csrf)))
            body {
                a class="skip-link" href="#main" { "Skip to content" }
                div class="app" {
                    header class="sidebar" {
                        div class="brand" {
                            a href="/keys" class="brand-link" { (logo()) span { "Keyward" } }
                            span class="org-name" title="Organization" { (m.org.name) }
                        }
                        nav aria-label="Main" {
                            ul class="nav" {
                                (item(Nav::Keys, "/keys", "API keys"))
                                @if m.actions.read_usage { (item(Nav::Usage, "/usage", "Usage")) }
                                @if m.actions.read_audit { (item(Nav::Audit, "/audit", "Audit log")) }
                                @if m.actions.read_security_events { (item(Nav::SecurityEvents, "/security-events", "Security events")) }
                                (item(Nav::Members, "/members", "Members"))
                                (item(Nav::Org, "/org", "Organization"))
                                (item(Nav::Apis, "/apis", "APIs"))
                                (item(Nav::IpAcls, "/ip-acls", "IP ACLs"))
                                (item(Nav::KeyGroups, "/key-groups", "Key groups"))
                                @if m.actions.manage_webhooks { (item(Nav::Webhooks, "/webhooks", "Webhooks")) }
                            }
                        }
                        div class="account" {
                            a class="docs-link" href="/docs" { "API reference" }
                            a class="who" href="/profile" aria-current=[(nav == Nav::Profile).then_some("page")]
                                title="Your profile: name and password" {
                                span class="email" { (m.caller.user.email) }
                                span class="badge neutral" { (m.caller.user.role.as_str()) }
                            }
                            form method="post" action="/sign-out" {
                                (csrf_field(m))
                                button type="submit" class="btn small ghost" { "Sign out" }
                            }
                        }
                    }
                    main id="main" class="main" tabindex="-1" {
                        @if let Some(flash) = &m.flash {
                            div class="notice success" role="status" { (flash) }
                        }
                        (content)
                    }
                }
            }
        }
    }
}

/// A page without the sidebar: sign-in, setup link, errors before sign-in.
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body class="bare" {
                main id="main" class="bare-main" {
                    div class="bare-brand" { (logo()) span { "Keyward" } }
                    (content)
                }
            }
        }
    }
}

/// An error page inside the shell.
pub fn error(m: &Member, status: StatusCode, title: &str, detail: &str) -> Markup {
    shell(
        m,
        Nav::Keys,
        title,
        html! {
            div class="card error-card" {
                p class="eyebrow" { "Error " (status.as_u16()) }
                h1 { (title) }
                p { (detail) }
                p { a class="btn" href="/keys" { "Back to API keys" } }
            }
        },
    )
}

/// A page for an address that shows nothing, inside the shell.
pub fn not_found(m: &Member, status: StatusCode, title: &str, detail: &str) -> Markup {
    shell(
        m,
        Nav::None,
        title,
        html! {
            div class="card error-card" {
                p class="eyebrow" { "Error " (status.as_u16()) }
                h1 { (title) }
                p { (detail) }
                p class="actions-row" {
                    a class="btn primary" href="/keys" { "Go to API keys" }
                    a class="btn" href="/docs" { "API reference" }
                }
            }
        },
    )
}

/// [`not_found`] without a session.
pub fn bare_not_found(status: StatusCode, title: &str, detail: &str) -> Markup {
    bare(
        title,
        html! {
            div class="card auth-card" {
                p class="eyebrow" { "Error " (status.as_u16()) }
                h1 { (title) }
                p { (detail) }
                p class="actions-row" {
                    a class="btn primary" href="/sign-in" { "Sign in" }
                    a class="btn" href="/docs" { "API reference" }
                }
            }
        },
    )
}

/// An error page without a session.
pub fn bare_error(status: StatusCode, title: &str, detail: &str) -> Markup {
    bare(
        title,
        html! {
            div class="card auth-card" {
                p class="eyebrow" { "Error " (status.as_u16()) }
                h1 { (title) }
                p { (detail) }
                p { a class="btn" href="/sign-in" { "Go to sign-in" } }
            }
        },
    )
}

/// The hidden CSRF field of a member's form.
pub fn csrf_field(m: &Member) -> Markup {
    html! { input type="hidden" name="csrf" value=(m.csrf); }
}

/// The page heading with an optional action area.
pub fn page_header(title: &str, subtitle: Option<Markup>, actions: Markup) -> Markup {
    html! {
        div class="page-header" {
            div {
                h1 { (title) }
                @if let Some(s) = subtitle { p class="subtitle" { (s) } }
            }
            div class="page-actions" { (actions) }
        }
    }
}

/// Errors that belong to no single field, at the top of a form.
pub fn form_errors(messages: &[String]) -> Markup {
    html! {
        @if !messages.is_empty() {
            div class="notice error" role="alert" {
                @if messages.len() == 1 {
                    (messages[0])
                } @else {
                    ul { @for m in messages { li { (m) } } }
                }
            }
        }
    }
}

/// A labelled control with its hint and error. `control` must carry `id=(id)` and should call
/// [`described_by`] for its `aria-describedby`.
pub fn field(
    id: &str,
    label: &str,
    hint: Option<&str>,
    errors: &FieldErrors,
    name: &str,
    control: Markup,
) -> Markup {
    let error = errors.of(name);
    html! {
        div class={ "field" @if error.is_some() { " has-error" } } {
            label for=(id) { (label) }
            (control)
            @if let Some(h) = hint { p class="hint" id={ (id) "-hint" } { (h) } }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

/// The `aria-describedby` of a control made with [`field`].
pub fn described_by(id: &str, hint: bool) -> String {
    if hint {
        format!("{id}-hint {id}-error")
    } else {
        format!("{id}-error")
    }
}

/// Options of an `<input>` made by [`input`].
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `text`, `email`, `password`, `number`, `date`...
    pub kind: &'a str,
    pub hint: Option<&'a str>,
    pub autocomplete: Option<&'a str>,
    pub placeholder: Option<&'a str>,
    pub required: bool,
    pub autofocus: bool,
    pub maxlength: Option<usize>,
}

impl Default for Input<'_> {
    fn default() -> Self {
        Input {
            kind: "text",
            hint: None,
            autocomplete: None,
            placeholder: None,
            required: false,
            autofocus: false,
            maxlength: None,
        }
    }
}

/// A labelled `<input>` with its hint and error.
pub fn input(
    id: &str,
    name: &str,
    label: &str,
    value: &str,
    errors: &FieldErrors,
    o: Input<'_>,
) -> Markup {
    let invalid = errors.of(name).is_some();
    field(
        id,
        label,
        o.hint,
        errors,
        name,
        html! {
            input id=(id) name=(name) type=(o.kind) value=(value)
                autocomplete=[o.autocomplete] placeholder=[o.placeholder]
                required[o.required] autofocus[o.autofocus] maxlength=[o.maxlength]
                aria-describedby=(described_by(id, o.hint.is_some()))
                aria-invalid=[invalid.then_some("true")];
        },
    )
}

/// A modal dialog (opened by a button with `data-open` = its id, or at load with `open`).
pub fn dialog(id: &str, title: &str, open: bool, wide: bool, body: Markup) -> Markup {
    html! {
        dialog id=(id) class={ "dialog" @if wide { " wide" } } aria-labelledby={ (id) "-title" }
            data-autoopen=[open.then_some("true")] {
            div class="dialog-header" {
                h2 id={ (id) "-title" } { (title) }
                button type="button" class="icon-btn" data-close aria-label="Close" { (PreEscaped("&times;")) }
            }
            (body)
        }
    }
}

/// A status pill.
pub fn badge(kind: &str, text: &str) -> Markup {
    html! { span class={ "badge " (kind) } { (text) } }
}

// -------------------------------------------------------------------- dates

fn datetime(ms: Millis) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Nov 22, 2025`.
pub fn date(ms: Millis) -> String {
    datetime(ms)
        .map(|t| {
            format!(
                "{} {}, {}",
                MONTHS[usize::from(u8::from(t.month())) - 1],
                t.day(),
                t.year()
            )
        })
        .unwrap_or_default()
}

/// `Nov 22, 2025, 10:04 UTC`.
pub fn date_time(ms: Millis) -> String {
    datetime(ms)
        .map(|t| format!("{}, {:02}:{:02} UTC", date(ms), t.hour(), t.minute()))
        .unwrap_or_default()
}

/// `3 minutes ago`, `in 5 days`, `just now`.
pub fn relative(now: Millis, t: Millis) -> String {
    let diff = t - now;
    let secs = diff.abs() / 1000;
    if secs < 45 {
        return "just now".into();
    }
    let (n, unit) = match secs {
        s if s < 3600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1800) / 3600, "hour"),
        s if s < 30 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 365 * 86_400 => ((s + 15 * 86_400) / (30 * 86_400), "month"),
        s => ((s + 182 * 86_400) / (365 * 86_400), "year"),
    };
    let n = n.max(1);
    let unit = if n == 1 {
        unit.to_owned()
    } else {
        format!("{unit}s")
    };
    if diff < 0 {
        format!("{n} {unit} ago")
    } else {
        format!("in {n} {unit}")
    }
}

/// A `<time>` showing the relative time, with the exact one in its title.
pub fn time_ago(now: Millis, t: Millis) -> Markup {
    html! {
        time datetime=(rfc3339(t)) title=(date_time(t)) { (relative(now, t)) }
    }
}

/// A `<time>` showing the date, with the exact time in its title.
pub fn time_date(t: Millis) -> Markup {
    html! {
        time datetime=(rfc3339(t)) title=(date_time(t)) { (date(t)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_800_000_000_000;
        assert_eq!(relative(now, now - 10_000), "just now");
        assert_eq!(relative(now, now - 3 * 60_000), "3 minutes ago");
        assert_eq!(relative(now, now - 3_600_000), "1 hour ago");
        assert_eq!(relative(now, now + 5 * 86_400_000), "in 5 days");
        assert_eq!(relative(now, now - 400 * 86_400_000), "1 year ago");
    }

    #[test]
    fn dates_are_short_and_utc() {
        // 2027-01-15T08:30:00Z
        let t = 1_800_001_800_000;
        assert_eq!(date(t), "Jan 15, 2027");
        assert_eq!(date_time(t), "Jan 15, 2027, 08:30 UTC");
    }
}
