//! Canonical JSON for content hashing: object keys sorted, no insignificant whitespace.
//! Written out by hand so the hash does not depend on serde_json's map ordering feature
//! (any crate in the build may switch on `preserve_order`).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the canonical form of `value`.
pub fn hash(value: &Value) -> String {
    let mut hasher = Sha256::new();
    let mut scratch = Vec::with_capacity(64);
    write(value, &mut hasher, &mut scratch);
    hex::encode(hasher.finalize())
}

fn write(value: &Value, out: &mut Sha256, scratch: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.update(b"{");
            for (i, (key, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                write_scalar(&Value::String(key.clone()), out, scratch);
                out.update(b":");
                write(val, out, scratch);
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                write(item, out, scratch);
            }
            out.update(b"]");
        }
        scalar => write_scalar(scalar, out, scratch),
    }
}

fn write_scalar(value: &Value, out: &mut Sha256, scratch: &mut Vec<u8>) {
    scratch.clear();
    // Serialising a scalar into a Vec cannot fail.
    if serde_json::to_writer(&mut *scratch, value).is_ok() {
        out.update(&scratch[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#).unwrap();
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn values_matter() {
        let a: Value = serde_json::from_str(r#"{"a":"1"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_ne!(hash(&a), hash(&b));
    }
}
