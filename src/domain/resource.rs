//! Resources a key may reach: `type:id` strings, matched by patterns of the same form whose
//! trailing `*` stands for any suffix (`project:acme-*`, `project:*`).

/// Most resource patterns one key carries.
pub const RESOURCES_MAX: usize = 50;
/// Longest type, in characters.
const TYPE_MAX: usize = 32;
/// Longest id, in characters.
const ID_MAX: usize = 200;

/// What a resource pattern must look like, for error messages.
pub const PATTERN_RULE: &str = "must be 'type:id': a type of lowercase letters, digits, '_' and '-' (1 to 32, starting with a letter), ':', then an id of letters, digits and '._:/@+-' (up to 200), optionally ending in '*' to match any suffix";
/// What a requested resource must look like, for error messages.
pub const RESOURCE_RULE: &str = "must be 'type:id': a type of lowercase letters, digits, '_' and '-' (1 to 32, starting with a letter), ':', then an id of letters, digits and '._:/@+-' (1 to 200)";

fn valid_type(t: &str) -> bool {
    let mut chars = t.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && t.len() <= TYPE_MAX
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn valid_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._:/@+-".contains(c)
}

/// Whether `s` is a resource a request may name (no wildcard).
pub fn is_valid_resource(s: &str) -> bool {
    let Some((t, id)) = s.split_once(':') else {
        return false;
    };
    valid_type(t) && !id.is_empty() && id.len() <= ID_MAX && id.chars().all(valid_id_char)
}

/// Whether `s` is a resource pattern a key may carry: a resource, or its beginning followed by
/// `*` (`project:*` matches every project).
pub fn is_valid_pattern(s: &str) -> bool {
    match s.strip_suffix('*') {
        Some(stem) => {
            let Some((t, id)) = stem.split_once(':') else {
                return false;
            };
            valid_type(t) && id.len() <= ID_MAX && id.chars().all(valid_id_char)
        }
        None => is_valid_resource(s),
    }
}

/// Whether `pattern` matches `resource`: equal, or, for a pattern ending in `*`, `resource`
/// begins with what precedes the `*`.
pub fn matches(pattern: &str, resource: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) => resource.starts_with(stem),
        None => pattern == resource,
    }
}

/// Whether a key carrying `patterns` may reach `resource`: a key without patterns reaches
/// everything.
pub fn allowed(patterns: &[String], resource: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_by_their_prefix() {
        assert!(matches("project:acme-web", "project:acme-web"));
        assert!(!matches("project:acme-web", "project:acme-web2"));
        assert!(matches("project:acme-*", "project:acme-web"));
        assert!(matches("project:acme-*", "project:acme-"));
        assert!(!matches("project:acme-*", "project:acm"));
        assert!(!matches("project:acme-*", "dataset:acme-web"));
        assert!(matches("project:*", "project:anything"));
        assert!(allowed(&[], "project:x"));
        assert!(!allowed(&["team:a".into()], "project:a"));
    }

    #[test]
    fn only_well_formed_patterns_and_resources_pass() {
        for ok in [
            "project:acme-web",
            "project:acme-*",
            "project:*",
            "s3:bucket/path.txt",
            "a:b",
        ] {
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "project",
            ":x",
            "Project:x",
            "project:",
            "*",
            "project:a*b",
            "pro ject:x",
            "project:a b",
            "1p:x",
            "project:**",
        ] {
            assert!(!is_valid_pattern(bad), "{bad:?}");
        }
        assert!(is_valid_resource("project:acme-web"));
        assert!(!is_valid_resource("project:acme-*"));
        assert!(!is_valid_resource("project:"));
        assert!(!is_valid_pattern(&format!("p:{}", "x".repeat(201))));
    }
}
