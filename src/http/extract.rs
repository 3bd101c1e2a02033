//! Extractors whose rejections are problem+json: malformed JSON is a 400, a JSON document of the
//! wrong shape a 422 naming the field, an oversized body a 413.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::validate::FieldError;

/// A JSON body. An empty body reads as `{}`, so optional-only bodies may be omitted.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("Could not read the request body: {e}"))
            }
        })?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// Refuses a body declared as anything but JSON (`application/json` or a `+json` type); a body
/// without a `Content-Type` is read as JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.as_bytes();
        let is_json = ct
            .get(..16)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"application/json"))
            || ct.windows(5).any(|w| w.eq_ignore_ascii_case(b"+json"));
        if !is_json {
            return Err(ApiError::BadRequest(
                "The request body must be JSON (Content-Type: application/json).".into(),
            ));
        }
    }
    Ok(())
}

/// Reads a whole body of at most `limit` bytes. A body that arrives in one piece (most do) is
/// returned as it came, without being gathered into a list and copied.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = http_body_util::Limited::new(body, limit);
    let mut first: Option<Bytes> = None;
    let mut gathered: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("Could not read the request body: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match first.take() {
            None if gathered.is_empty() => first = Some(data),
            earlier => {
                gathered.extend_from_slice(earlier.as_deref().unwrap_or_default());
                gathered.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| gathered.into()))
}

/// A JSON body as `T`; an empty one reads as `{}`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    parse_json(bytes)
}

/// Parses JSON, telling syntax errors (400) from shape errors (422 with the field's path). Every
/// body is an object.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::Validation(vec![FieldError {
                field: "body".into(),
                message: "wrong type; expected an object".into(),
            }])),
            Err(e) => Err(ApiError::BadRequest(format!(
                "The request body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ))),
        };
    }
    // The common case, a valid body, is parsed without tracking paths; only a refused one is
    // parsed again to name the field.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let field = field_of(err.path());
            let inner = err.into_inner();
            // serde_json reports some shape errors (an enum given an empty object, a list too
            // long for a struct) as syntax errors: whether the JSON itself parses decides.
            if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
                Err(ApiError::Validation(vec![FieldError {
                    field,
                    message: safe_message(&inner.to_string()),
                }]))
            } else {
                Err(ApiError::BadRequest(format!(
                    "The request body is not valid JSON (line {}, column {}).",
                    inner.line(),
                    inner.column()
                )))
            }
        }
    }
}

/// The field a shape error is about, as a path of the schema's own names (`rate_limit.requests`,
/// `scopes[2]`). A segment that is not such a name (a key of a free-form object) ends the path
/// there: it is whatever the client sent.
fn field_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut field = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key }
                if (1..=40).contains(&key.len())
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
            {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            _ => break,
        }
    }
    if field.is_empty() || field.starts_with('[') {
        field.insert_str(0, "body");
    }
    field
}

/// A shape error's message without the value that caused it. serde quotes what it found
/// (``unknown variant `x` ``, `invalid type: string "x"`), and what a client sends in the wrong
/// field could be a secret. What it expected comes from the schema and is kept.
fn safe_message(msg: &str) -> String {
    let msg = msg.find(" at line ").map_or(msg, |i| &msg[..i]);
    let expected = msg.find(", expected ").map(|i| &msg[i + 2..]);
    let with_expected = |what: &str| match expected {
        Some(e) => format!("{what}; {e}"),
        None => what.to_owned(),
    };
    if msg.starts_with("unknown variant") {
        with_expected("unknown value")
    } else if msg.starts_with("unknown field") {
        with_expected("unknown field")
    } else if msg.starts_with("invalid type") {
        with_expected("wrong type")
    } else if msg.starts_with("invalid value") {
        with_expected("invalid value")
    } else if msg.starts_with("invalid length") || msg.starts_with("missing field") {
        // A count, or the schema's own field name.
        msg.to_owned()
    } else if msg.starts_with("duplicate field") {
        "given more than once".to_owned()
    } else {
        // A message of a type's own parser (addresses, instants), which may quote its input.
        "invalid value".to_owned()
    }
}

/// Query parameters; a malformed one is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "Invalid query parameters: {}.",
                    safe_message(&e.to_string())
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper::body::Frame;

    use super::*;

    /// A body arriving in the given pieces.
    struct Pieces(VecDeque<&'static [u8]>);

    impl hyper::body::Body for Pieces {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|p| Ok(Frame::data(Bytes::from_static(p)))),
            )
        }
    }

    fn body(pieces: &[&'static [u8]]) -> Body {
        Body::new(Pieces(pieces.iter().copied().collect()))
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Shape {
        name: String,
        kind: Option<Kind>,
        count: Option<u32>,
        inner: Option<Inner>,
        list: Option<Vec<u8>>,
        free: Option<std::collections::HashMap<String, u8>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Live,
        Test,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Inner {
        requests: u32,
    }

    fn refused(body: &str) -> FieldError {
        match parse_json::<Shape>(body.as_bytes()) {
            Err(ApiError::Validation(mut errors)) => errors.remove(0),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_value_in_the_wrong_place_is_named_by_field_and_never_repeated() {
        let secret = "kw_live_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";
        let cases = [
            (
                format!(r#"{{"name":"a","kind":"{secret}"}}"#),
                "kind",
                "unknown value; expected `live` or `test`",
            ),
            (
                format!(r#"{{"name":"a","{secret}":1}}"#),
                "body",
                "unknown field; expected one of `name`, `kind`, `count`, `inner`, `list`, `free`",
            ),
            (
                format!(r#"{{"name":"a","count":"{secret}"}}"#),
                "count",
                "wrong type; expected u32",
            ),
            (
                format!(r#"{{"name":"a","inner":{{"requests":"{secret}"}}}}"#),
                "inner.requests",
                "wrong type; expected u32",
            ),
            (
                format!(r#"{{"name":"a","list":[1,"{secret}"]}}"#),
                "list[1]",
                "wrong type; expected u8",
            ),
            (
                format!(r#"{{"name":"a","free":{{"{secret}":"x"}}}}"#),
                "free",
                "wrong type; expected u8",
            ),
            (
                format!(r#"{{"name":["{secret}"]}}"#),
                "name",
                "wrong type; expected a string",
            ),
            (
                r#"{"kind":"live"}"#.to_owned(),
                "body",
                "missing field `name`",
            ),
        ];
        for (body, field, message) in cases {
            let e = refused(&body);
            assert_eq!(
                (e.field.as_str(), e.message.as_str()),
                (field, message),
                "{body}"
            );
            assert!(
                !e.message.contains("0123456789abcdef") && !e.field.contains("0123456789abcdef")
            );
        }
    }

    #[test]
    fn malformed_json_is_a_400_that_repeats_nothing() {
        let secret = "kw_live_0123456789abcdef";
        match parse_json::<Shape>(format!("{{\"name\": {secret}}}").as_bytes()) {
            Err(ApiError::BadRequest(d)) => assert!(!d.contains(secret), "{d}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_is_read_whole_however_it_arrives() {
        for pieces in [
            &[][..],
            &[&b""[..]],
            &[&b"{\"key\":1}"[..]],
            &[&b""[..], &b"{\"ke"[..], &b""[..], &b"y\":1}"[..]],
            &[&b"{\"k"[..], &b"ey\":1}"[..]],
        ] {
            let read = read_body(body(pieces), 64).await.unwrap();
            assert_eq!(read, pieces.concat(), "{pieces:?}");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_however_it_arrives() {
        for pieces in [&[&[b'x'; 65][..]][..], &[&[b'x'; 40][..], &[b'x'; 25][..]]] {
            let refused = read_body(body(pieces), 64).await;
            assert!(matches!(refused, Err(ApiError::PayloadTooLarge)));
        }
        let exactly = read_body(body(&[&[b'x'; 40], &[b'x'; 24]]), 64).await;
        assert_eq!(exactly.unwrap().len(), 64);
    }
}
