//! The controls of an API's scope catalogue and token types: one row per scope (its name and what
//! it allows, added and removed in place), and a checkbox per token type.
//!
//! Without the script every row is still a plain pair of fields: a blank row at the end adds a
//! scope, and emptying a row removes its scope.

use maud::{Markup, html};

use super::{FieldErrors, FormData};
use crate::domain::model::ScopeDef;

/// The token types offered as checkboxes, with what each is for; an API may have others.
pub const TOKEN_TYPES: &[(&str, &str)] = &[
    ("standard", "General purpose: any request the scopes allow."),
    (
        "batch",
        "Jobs that upload work and collect the results later.",
    ),
    ("realtime", "Live, streaming requests."),
];

/// What a token type is for, when it is one of [`TOKEN_TYPES`].
pub fn type_description(t: &str) -> Option<&'static str> {
    TOKEN_TYPES.iter().find(|(n, _)| *n == t).map(|(_, d)| *d)
}

/// The scope catalogue of a form: each row's name and description, in order; rows left entirely
/// blank are skipped, so that the `n`th scope here is the `n`th the service's errors name.
pub fn parse_scopes(form: &FormData) -> Vec<ScopeDef> {
    let names = form.all("scope_name");
    let descriptions = form.all("scope_description");
    names
        .iter()
        .enumerate()
        .map(|(i, name)| ScopeDef {
            name: name.trim().to_owned(),
            description: descriptions
                .get(i)
                .map(|d| d.trim().to_owned())
                .unwrap_or_default(),
        })
        .filter(|s| !(s.name.is_empty() && s.description.is_empty()))
        .collect()
}

/// The token types of a form: the boxes checked, then the other types typed (separated by commas
/// or spaces), each once.
pub fn parse_token_types(form: &FormData) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    let typed = form
        .all("token_types")
        .into_iter()
        .chain(form.all("token_types_other"));
    for t in typed.flat_map(|v| v.split(|c: char| c == ',' || c.is_whitespace())) {
        if !t.is_empty() && !types.iter().any(|x| x == t) {
            types.push(t.to_owned());
        }
    }
    types
}

/// The scope editor: a row per scope and a blank one to add another.
pub fn scope_editor(id: &str, scopes: &[ScopeDef], errors: &FieldErrors) -> Markup {
    let whole = errors.exactly("scopes");
    let any_error = errors.of("scopes").is_some();
    html! {
        fieldset class={ "field scope-editor" @if any_error { " has-error" } } data-scope-editor {
            legend { "Scopes" }
            p class="hint" id={ (id) "-hint" } {
                "What keys of this API may be allowed to do, such as " code { "transcripts:read" }
                ". Lowercase letters, digits and " code { ":" } " " code { "." } " " code { "_" } " " code { "-" } "."
            }
            div class="scope-head" aria-hidden="true" { span { "Name" } span { "What it allows" } span {} }
            ol class="scope-rows" data-scope-rows {
                @for (i, s) in scopes.iter().enumerate() {
                    (scope_row(id, i, s, errors.of(&format!("scopes[{i}]")).as_deref()))
                }
                (scope_row(id, scopes.len(), &ScopeDef { name: String::new(), description: String::new() }, None))
            }
            template data-scope-template {
                (scope_row(id, 0, &ScopeDef { name: String::new(), description: String::new() }, None))
            }
            button type="button" class="btn small" data-scope-add hidden { "+ Add scope" }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[whole.is_none()] {
                @if let Some(e) = &whole { (e) }
            }
        }
    }
}

fn scope_row(id: &str, i: usize, s: &ScopeDef, error: Option<&str>) -> Markup {
    let n = i + 1;
    let row = format!("{id}-{i}");
    html! {
        li class={ "scope-row" @if error.is_some() { " has-error" } } {
            input type="text" name="scope_name" value=(s.name) maxlength="64" spellcheck="false"
                autocapitalize="off" placeholder="e.g. transcripts:read" class="mono"
                aria-label={ "Name of scope " (n) } data-scope-label="Name of scope"
                aria-describedby={ (row) "-error" } aria-invalid=[error.is_some().then_some("true")];
            input type="text" name="scope_description" value=(s.description) maxlength="200"
                placeholder="e.g. Read transcripts" aria-label={ "What scope " (n) " allows" }
                data-scope-label="What it allows, scope";
            button type="button" class="icon-btn" data-scope-remove hidden
                aria-label={ "Remove scope " (n) } title="Remove this scope" { "×" }
            p class="field-error" id={ (row) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = error { (e) }
            }
        }
    }
}

/// A checkbox per token type (the usual ones and any the API already has), and a field for others.
pub fn token_type_checkboxes(id: &str, chosen: &[String], errors: &FieldErrors) -> Markup {
    let error = errors.of("token_types");
    let others: Vec<&str> = chosen
        .iter()
        .map(String::as_str)
        .filter(|t| type_description(t).is_none())
        .collect();
    html! {
        fieldset class={ "field" @if error.is_some() { " has-error" } } {
            legend { "Token types" }
            p class="hint" id={ (id) "-hint" } { "Each key has one; a verification may require one. Choose at least one." }
            div class="checkbox-list inline-checks" {
                @for (t, description) in TOKEN_TYPES {
                    @let cid = format!("{id}-{t}");
                    label class="checkbox" for=(cid) {
                        input type="checkbox" id=(cid) name="token_types" value=(t)
                            checked[chosen.iter().any(|c| c == t)];
                        span { strong { (t) } span class="muted" { " — " (description) } }
                    }
                }
            }
            div class="other-types" {
                label for={ (id) "-other" } { "Other types " span class="optional" { "optional, separated by commas" } }
                input type="text" id={ (id) "-other" } name="token_types_other" value=(others.join(", "))
                    spellcheck="false" autocapitalize="off" placeholder="e.g. webhook"
                    aria-describedby={ (id) "-hint " (id) "-error" }
                    aria-invalid=[error.is_some().then_some("true")];
            }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_rows_read_back_in_order_without_blank_rows() {
        let f = FormData::parse(
            b"scope_name=transcripts%3Aread&scope_description=+Read+transcripts+\
              &scope_name=&scope_description=\
              &scope_name=admin&scope_description=\
              &scope_name=&scope_description=orphan",
        );
        assert_eq!(
            parse_scopes(&f),
            vec![
                ScopeDef {
                    name: "transcripts:read".into(),
                    description: "Read transcripts".into()
                },
                ScopeDef {
                    name: "admin".into(),
                    description: String::new()
                },
                ScopeDef {
                    name: String::new(),
                    description: "orphan".into()
                },
            ],
            "a description without a name is kept, for the service to say the name is missing"
        );
    }

    #[test]
    fn token_types_come_from_the_boxes_and_the_other_field_once_each() {
        let f = FormData::parse(
            b"token_types=standard&token_types=batch&token_types_other=webhook%2C+batch++cron",
        );
        assert_eq!(
            parse_token_types(&f),
            ["standard", "batch", "webhook", "cron"]
        );
        let old = FormData::parse(b"token_types=standard%2C+batch");
        assert_eq!(parse_token_types(&old), ["standard", "batch"]);
    }
}
