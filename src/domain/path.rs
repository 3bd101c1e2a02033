//! Request paths as the gateway compares them with route prefixes. A route guards what the
//! upstream will serve, so two spellings of one path must meet the same route: percent-encoded
//! unreserved characters are decoded (`%61` is `a`), other escapes written in uppercase, dot
//! segments resolved as RFC 3986 does (`..` stops at the root) and repeated slashes merged, as
//! nginx does by default. The path is forwarded in this form, so the upstream serves what was
//! checked.

/// `path` in its normal form, or `None` when it is no origin-form path (it does not start with
/// `/`, or holds a `%` not followed by two hex digits).
pub fn normalize(path: &str) -> Option<String> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return None;
    }
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                decoded.push(byte as char);
            } else {
                decoded.push('%');
                decoded.push_str(
                    &hex.to_ascii_uppercase()
                        .iter()
                        .map(|&c| c as char)
                        .collect::<String>(),
                );
            }
            i += 3;
        } else {
            decoded.push(b[i] as char);
            i += 1;
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in decoded.split('/').skip(1) {
        trailing = false;
        match segment {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                segments.pop();
                trailing = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Whether the normalized `path` falls under the normalized `prefix` on a segment boundary:
/// `/api/v3/stream` covers `/api/v3/stream` and `/api/v3/stream/abc`, not `/api/v3/streams`.
pub fn under(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_normalize_alike() {
        let n = |p: &str| normalize(p).unwrap();
        assert_eq!(n("/"), "/");
        assert_eq!(n("/api/v3/stream"), "/api/v3/stream");
        assert_eq!(n("/api/v3/%73tream"), "/api/v3/stream");
        assert_eq!(n("/api//v3/./stream"), "/api/v3/stream");
        assert_eq!(n("/api/x/../v3/stream"), "/api/v3/stream");
        assert_eq!(n("/../../api"), "/api");
        assert_eq!(n("/api/%2e%2E/admin"), "/admin");
        assert_eq!(n("/a/b/"), "/a/b/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(
            n("/a/%2fb"),
            "/a/%2Fb",
            "an encoded slash stays one segment"
        );
        assert_eq!(n("/a%20b"), "/a%20b");
        assert_eq!(n("//"), "/");
        for bad in ["", "*", "a/b", "/%", "/%2", "/%zz"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(under("/api/v3/stream", "/api/v3/stream"));
        assert!(under("/api/v3/stream", "/api/v3/stream/abc"));
        assert!(under("/api/v3/stream", "/api/v3/stream/"));
        assert!(!under("/api/v3/stream", "/api/v3/streams"));
        assert!(!under("/api/v3/stream", "/api/v3"));
        assert!(under("/", "/anything"));
        assert!(under("/api/", "/api/x"));
        assert!(!under("/api/", "/api"));
    }
}
