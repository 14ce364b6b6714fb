//! Canonical JSON for content hashing: object keys sorted, no insignificant whitespace.
//! Written out here so the hash does not depend on serde_json's map ordering (any crate in
//! the build may switch on `preserve_order`); objects already in order, the common case, are
//! not re-sorted.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the canonical form of `value`.
pub fn hash(value: &Value) -> String {
    let mut buffer = Vec::with_capacity(4096);
    write(value, &mut buffer);
    hex::encode(Sha256::digest(&buffer))
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        // Scalars serialise into a Vec infallibly.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a <= b);
    out.push(b'{');
    let entry = |i: usize, key: &String, val: &Value, out: &mut Vec<u8>| {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, key.as_str());
        out.push(b':');
        write(val, out);
    };
    if sorted {
        for (i, (key, val)) in map.iter().enumerate() {
            entry(i, key, val, out);
        }
    } else {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (i, (key, val)) in entries.into_iter().enumerate() {
            entry(i, key, val, out);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#).unwrap();
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn canonical_text_is_sorted_and_compact() {
        let a: Value =
            serde_json::from_str(r#"{"b": {"d": 1, "c": "\"q\""}, "a": [true, 1.5]}"#).unwrap();
        let mut out = Vec::new();
        write(&a, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":[true,1.5],"b":{"c":"\"q\"","d":1}}"#
        );
    }

    #[test]
    fn values_matter() {
        let a: Value = serde_json::from_str(r#"{"a":"1"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_ne!(hash(&a), hash(&b));
    }
}
