//! MD5 (RFC 1321), only for the `md5OfBody` / `md5OfMessageAttributes` fields SQS puts in
//! every Lambda SQS record, so the `events/` fixtures carry the values AWS would send.

use md5::{Digest, Md5};

/// Hex MD5 digest of `data`.
pub fn hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `MD5OfMessageAttributes` as SQS computes it for String attributes: attributes sorted by
/// name, each encoded as length-prefixed name, length-prefixed data type, transport byte 1
/// and length-prefixed value.
pub fn of_string_attributes(attributes: &[(&str, &str)]) -> String {
    fn push(buffer: &mut Vec<u8>, bytes: &[u8]) {
        buffer.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buffer.extend_from_slice(bytes);
    }
    let mut sorted = attributes.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut buffer = Vec::new();
    for (name, value) in sorted {
        push(&mut buffer, name.as_bytes());
        push(&mut buffer, b"String");
        // Transport type 1 = String: a single byte, not length-prefixed.
        buffer.push(1);
        push(&mut buffer, value.as_bytes());
    }
    hex(&buffer)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        assert_eq!(super::hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            super::hex(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(super::hex(&[b'a'; 200]), "887f30b43b2867f4a9accceee7d16e6c");
        // Checked against Python's hashlib over the same SQS attribute encoding.
        assert_eq!(
            super::of_string_attributes(&[
                ("event_time", "2025-09-01T10:00:00.123Z"),
                ("event_name", "grade_change")
            ]),
            "09213d732c14c398e2de964b81504285"
        );
    }
}
