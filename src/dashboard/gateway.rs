//! The gateway section of the APIs page: where an API's verified requests go (its upstream), the
//! hosts it answers for and its routes, shown on each API's card and edited in its dialog.

use maud::{Markup, html};

use super::layout::{described_by, field};
use super::{FieldErrors, FormData};
use crate::domain::model::{Api, Route};

/// Empty route rows offered below an API's routes, to add new ones without script.
const NEW_ROWS: usize = 3;

/// What the gateway section of a form shows: as stored, or as typed.
pub(super) struct GatewayForm {
    upstream: String,
    hosts: String,
    /// Path prefix, methods, token types, scopes.
    routes: Vec<[String; 4]>,
}

impl GatewayForm {
    pub(super) fn new_api() -> GatewayForm {
        GatewayForm {
            upstream: String::new(),
            hosts: String::new(),
            routes: Vec::new(),
        }
    }

    pub(super) fn of_api(a: &Api) -> GatewayForm {
        GatewayForm {
            upstream: a.upstream.clone().unwrap_or_default(),
            hosts: a.hosts.join("\n"),
            routes: a
                .routes
                .iter()
                .map(|r| {
                    [
                        r.path_prefix.clone(),
                        r.methods.join(", "),
                        r.token_types.join(", "),
                        r.required_scopes.join(", "),
                    ]
                })
                .collect(),
        }
    }

    pub(super) fn of_form(f: &FormData) -> GatewayForm {
        GatewayForm {
            upstream: f.text("upstream").into(),
            hosts: f.text("hosts").into(),
            routes: rows(f)
                .into_iter()
                .map(|r| r.map(str::to_owned))
                .filter(|r| r.iter().any(|c| !c.is_empty()))
                .collect(),
        }
    }
}

/// The gateway settings a form submitted; `None` when it had no gateway section.
pub(super) struct Submitted {
    pub upstream: Option<String>,
    pub hosts: Vec<String>,
    pub routes: Vec<Route>,
    /// The form row of each route, for errors about it.
    rows: Vec<usize>,
}

/// The route rows of a form, each trimmed: path prefix, methods, token types, scopes.
fn rows(f: &FormData) -> Vec<[&str; 4]> {
    let columns = [
        "route_prefix",
        "route_methods",
        "route_types",
        "route_scopes",
    ]
    .map(|n| f.all(n));
    let count = columns.iter().map(Vec::len).max().unwrap_or(0);
    (0..count)
        .map(|i| {
            columns
                .each_ref()
                .map(|c| c.get(i).map_or("", |v| v.trim()))
        })
        .collect()
}

/// Words separated by commas or spaces.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The gateway settings of a submitted form. Blank route rows are skipped; a row with settings but
/// no path prefix is an error of that row.
pub(super) fn parse(form: &FormData, errors: &mut FieldErrors) -> Option<Submitted> {
    form.get("upstream")?;
    let mut submitted = Submitted {
        upstream: form.non_empty("upstream"),
        hosts: words(form.text("hosts")),
        routes: Vec::new(),
        rows: Vec::new(),
    };
    for (i, [prefix, methods, types, scopes]) in rows(form).into_iter().enumerate() {
        if prefix.is_empty() {
            if !(methods.is_empty() && types.is_empty() && scopes.is_empty()) {
                errors.add(
                    format!("routes[{i}]"),
                    "give the route a path prefix, like /api/v1",
                );
            }
            continue;
        }
        submitted.routes.push(Route {
            path_prefix: prefix.to_owned(),
            methods: words(&methods.to_ascii_uppercase()),
            required_scopes: words(scopes),
            token_types: words(types),
        });
        submitted.rows.push(i);
    }
    Some(submitted)
}

impl Submitted {
    /// The service's errors, routes named by their form row.
    pub(super) fn errors_by_row(&self, errors: FieldErrors) -> FieldErrors {
        let mut out = FieldErrors::default();
        for (f, m) in errors.0 {
            let row = f
                .strip_prefix("routes[")
                .and_then(|r| r.split_once(']'))
                .and_then(|(i, rest)| Some((self.rows.get(i.parse::<usize>().ok()?)?, rest)));
            match row {
                Some((row, rest)) => out.add(format!("routes[{row}]{rest}"), m),
                None => out.add(f, m),
            }
        }
        out
    }
}

/// The fields a form's gateway section sets.
pub(super) const FIELDS: [&str; 3] = ["upstream", "hosts", "routes"];

/// The gateway section of an API's dialog.
pub(super) fn fields(id: &str, v: &GatewayForm, errors: &FieldErrors) -> Markup {
    let routes_error = errors.of("routes");
    let blank = [const { String::new() }; 4];
    let shown = v.routes.iter().chain(std::iter::repeat_n(&blank, NEW_ROWS));
    html! {
        fieldset class="gateway-fields" {
            legend { "Gateway " span class="optional" { "optional" } }
            p class="hint" {
                "With an upstream, Keyward's gateway checks each request's key and forwards it there."
            }
            (field(&format!("{id}-upstream"), "Upstream URL",
                Some("Where verified requests go, e.g. http://127.0.0.1:9000. Its path is put before each request's path."),
                errors, "upstream", html! {
                input id={ (id) "-upstream" } name="upstream" type="text" inputmode="url" value=(v.upstream)
                    placeholder="http://127.0.0.1:9000" spellcheck="false"
                    aria-describedby=(described_by(&format!("{id}-upstream"), true))
                    aria-invalid=[errors.of("upstream").is_some().then_some("true")];
            }))
            (field(&format!("{id}-hosts"), "Hosts",
                Some("Host names this API answers for, one a line. Empty: any host."),
                errors, "hosts", html! {
                textarea id={ (id) "-hosts" } name="hosts" rows="2" spellcheck="false"
                    placeholder="api.example.com"
                    aria-describedby=(described_by(&format!("{id}-hosts"), true))
                    aria-invalid=[errors.of("hosts").is_some().then_some("true")] { (v.hosts) }
            }))
            div class={ "field" @if routes_error.is_some() { " has-error" } } {
                span class="label" id={ (id) "-routes-label" } { "Routes" }
                div class="table-wrap" {
                    table class="table compact routes-editor" aria-labelledby={ (id) "-routes-label" } {
                        thead { tr {
                            th scope="col" { "Path prefix" }
                            th scope="col" { "Methods" }
                            th scope="col" { "Token types" }
                            th scope="col" { "Required scopes" }
                        } }
                        tbody {
                            @for (i, r) in shown.enumerate() {
                                tr {
                                    td { input type="text" name="route_prefix" value=(r[0]) placeholder="/api/v1" spellcheck="false"
                                        aria-label={ "Route " (i + 1) ": path prefix" }; }
                                    td { input type="text" name="route_methods" value=(r[1]) placeholder="any" spellcheck="false"
                                        aria-label={ "Route " (i + 1) ": methods" }; }
                                    td { input type="text" name="route_types" value=(r[2]) placeholder="any" spellcheck="false"
                                        aria-label={ "Route " (i + 1) ": token types" }; }
                                    td { input type="text" name="route_scopes" value=(r[3]) placeholder="none" spellcheck="false"
                                        aria-label={ "Route " (i + 1) ": required scopes" }; }
                                }
                            }
                        }
                    }
                }
                p class="hint" id={ (id) "-routes-hint" } {
                    "The longest prefix that matches a request's path wins. Lists are separated by commas; empty methods or types take any. No routes: every path is forwarded and only the key is checked. Save to get more empty rows."
                }
                p class="field-error" id={ (id) "-routes-error" } role="alert" hidden[routes_error.is_none()] {
                    @if let Some(e) = &routes_error { (e) }
                }
            }
        }
    }
}

/// An API's gateway settings, on its card.
pub(super) fn card(a: &Api) -> Markup {
    html! {
        h3 { "Gateway" }
        @match &a.upstream {
            None => p class="muted" { "Not served by the gateway: no upstream." },
            Some(u) => {
                dl class="props" {
                    dt { "Upstream" } dd { code { (u) } }
                    dt { "Hosts" } dd {
                        @if a.hosts.is_empty() { span class="muted" { "Any host" } }
                        @else { ul class="chips" { @for h in &a.hosts { li class="chip" { code { (h) } } } } }
                    }
                }
                @if a.routes.is_empty() {
                    p class="muted" { "No routes: every path is forwarded and only the key is checked." }
                } @else {
                    div class="table-wrap" {
                        table class="table compact" {
                            caption class="visually-hidden" { "Gateway routes of " (a.name) }
                            thead { tr {
                                th scope="col" { "Path prefix" } th scope="col" { "Methods" }
                                th scope="col" { "Token types" } th scope="col" { "Required scopes" }
                            } }
                            tbody {
                                @for r in &a.routes {
                                    tr {
                                        td data-label="Path prefix" { code { (r.path_prefix) } }
                                        td data-label="Methods" { (list_or(&r.methods, "any")) }
                                        td data-label="Token types" { (list_or(&r.token_types, "any")) }
                                        td data-label="Required scopes" { (list_or(&r.required_scopes, "none")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_rows_are_read_skipping_blank_ones_and_errors_name_their_row() {
        let pairs = [
            ("upstream", " http://127.0.0.1:9000 "),
            ("hosts", "api.example.com, b.example\nc.example"),
            ("route_prefix", "/api/v3/stream"),
            ("route_methods", "get"),
            ("route_types", "realtime"),
            ("route_scopes", ""),
            ("route_prefix", ""),
            ("route_methods", ""),
            ("route_types", ""),
            ("route_scopes", ""),
            ("route_prefix", "/docs"),
            ("route_methods", "GET, head"),
            ("route_types", ""),
            ("route_scopes", "a:read a:write"),
            ("route_prefix", ""),
            ("route_methods", "POST"),
            ("route_types", ""),
            ("route_scopes", ""),
        ];
        let form = FormData::parse(serde_urlencoded::to_string(pairs).unwrap().as_bytes());
        let mut errors = FieldErrors::default();
        let s = parse(&form, &mut errors).unwrap();
        assert_eq!(s.upstream.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.hosts, ["api.example.com", "b.example", "c.example"]);
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.routes[0].methods, ["GET"]);
        assert_eq!(s.routes[1].methods, ["GET", "HEAD"]);
        assert_eq!(s.routes[1].required_scopes, ["a:read", "a:write"]);
        assert_eq!(
            errors.of("routes").unwrap(),
            "Entry 4: give the route a path prefix, like /api/v1"
        );
        let mut service = FieldErrors::default();
        service.add("routes[1].path_prefix", "is wrong");
        service.add("hosts[0]", "is wrong");
        let by_row = s.errors_by_row(service);
        assert_eq!(by_row.of("routes").unwrap(), "Entry 3: is wrong");
        assert!(
            parse(&FormData::default(), &mut errors).is_none(),
            "no gateway section"
        );
    }
}
