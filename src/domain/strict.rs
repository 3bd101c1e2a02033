//! Reading the API's JSON as documented. serde's derived types take more than the document says:
//! a struct also from a list of its fields in order, a unit enum also from `{"variant": null}`.
//! These adapters, for `#[serde(deserialize_with)]`, take an object where an object is documented
//! and a string where a string enum is, and nothing else.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn convert<T: DeserializeOwned, E: Error>(value: Value) -> Result<T, E> {
    serde_json::from_value(value).map_err(E::custom)
}

fn object_value<E: Error>(value: Value) -> Result<Value, E> {
    match value {
        Value::Object(_) => Ok(value),
        _ => Err(E::custom("invalid type, expected an object")),
    }
}

fn string_value<E: Error>(value: Value) -> Result<Value, E> {
    match value {
        Value::String(_) => Ok(value),
        _ => Err(E::custom("invalid type, expected a string")),
    }
}

/// An integer; JSON Schema counts `856.0` as one too, and so is it taken here.
fn integer<E: Error>(value: Value) -> Result<i64, E> {
    let Value::Number(n) = value else {
        return Err(E::custom("invalid type, expected an integer"));
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Some(f) if f.fract() == 0.0 => Err(E::custom("invalid value, expected a smaller integer")),
        _ => Err(E::custom("invalid type, expected an integer")),
    }
}

/// An integer that fits `T`.
pub fn int<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    let i = integer(Value::deserialize(d)?)?;
    T::try_from(i).map_err(|_| D::Error::custom("invalid value, expected an integer in range"))
}

/// An integer that fits `T`, or `null`.
pub fn option_int<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => {
            let i = integer(v)?;
            T::try_from(i)
                .map(Some)
                .map_err(|_| D::Error::custom("invalid value, expected an integer in range"))
        }
    }
}

/// An object.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    convert(object_value(Value::deserialize(d)?)?)
}

/// An object, or `null`.
pub fn option_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => convert(object_value(v)?).map(Some),
    }
}

/// Absent (`None`, with `#[serde(default)]`), `null` (`Some(None)`) or an object.
pub fn double_option_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    option_object(d).map(Some)
}

/// A list whose every item passes `item`, or `null`.
fn option_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
    item: fn(Value) -> Result<Value, D::Error>,
) -> Result<Option<Vec<T>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .into_iter()
            .map(|v| convert(item(v)?))
            .collect::<Result<_, _>>()
            .map(Some),
        _ => Err(D::Error::custom("invalid type, expected a list")),
    }
}

/// A list of objects, or `null`.
pub fn option_vec_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    option_list(d, object_value)
}

/// A list of objects (absent: empty, with `#[serde(default)]`).
pub fn vec_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    option_vec_object(d).map(Option::unwrap_or_default)
}

/// A string enum.
pub fn string_enum<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    convert(string_value(Value::deserialize(d)?)?)
}

/// A string enum, or `null`.
pub fn option_string_enum<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => convert(string_value(v)?).map(Some),
    }
}

/// A list of string enums, or `null`.
pub fn option_vec_string_enum<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    option_list(d, string_value)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(deserialize_with = "super::int")]
        a: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Live,
    }

    #[derive(Debug, Deserialize)]
    struct Outer {
        #[serde(default, deserialize_with = "super::option_object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "super::option_vec_object")]
        list: Option<Vec<Inner>>,
        #[serde(default, deserialize_with = "super::option_string_enum")]
        kind: Option<Kind>,
    }

    fn parse(json: &str) -> Result<Outer, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn objects_and_string_enums_are_taken_only_as_documented() {
        let ok = parse(r#"{"inner":{"a":1.0},"list":[{"a":2}],"kind":"live"}"#).unwrap();
        assert_eq!(ok.inner, Some(Inner { a: 1 }));
        assert_eq!(ok.list, Some(vec![Inner { a: 2 }]));
        assert_eq!(ok.kind, Some(Kind::Live));
        let absent = parse("{}").unwrap();
        assert!(absent.inner.is_none() && absent.list.is_none() && absent.kind.is_none());
        assert!(parse(r#"{"inner":null,"list":null,"kind":null}"#).is_ok());
        for bad in [
            r#"{"inner":[1]}"#,
            r#"{"list":[[2]]}"#,
            r#"{"list":{"a":1}}"#,
            r#"{"kind":{"live":null}}"#,
            r#"{"inner":{"a":"1"}}"#,
            r#"{"inner":{"a":1,"b":2}}"#,
            r#"{"inner":{"a":1.5}}"#,
            r#"{"inner":{"a":-1}}"#,
            r#"{"inner":{"a":5000000000}}"#,
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid type")
                    || err.starts_with("invalid value")
                    || err.starts_with("unknown field"),
                "{bad}: {err}"
            );
        }
    }
}
