//! Rails-style parameters: query strings and form bodies with repeated `key[]` entries,
//! percent-decoding in, percent-encoding out (for `Link` URLs).

/// Ordered `key=value` pairs of a query string or an `application/x-www-form-urlencoded` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(part), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// First value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key[]` and of plain `key` (Rails accepts both for lists).
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        let list = format!("{key}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| *k == list || k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Re-encodes every pair except the named keys, in the original order.
    pub(crate) fn encode_without(&self, skip: &[&str]) -> String {
        self.pairs
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-decodes one component (`+` is a space, invalid escapes stay literal).
pub(crate) fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes one component; `:` stays literal as in Canvas's bookmark links.
pub(crate) fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repeated_keys_and_round_trips() {
        let p = Params::parse("state%5B%5D=active&state[]=invited&per_page=5&x=a+b%2Fc&flag");
        assert_eq!(p.all("state"), vec!["active", "invited"]);
        assert_eq!(p.get("per_page"), Some("5"));
        assert_eq!(p.get("x"), Some("a b/c"));
        assert_eq!(p.get("flag"), Some(""));
        assert_eq!(
            p.encode_without(&["per_page", "flag"]),
            "state%5B%5D=active&state%5B%5D=invited&x=a%20b%2Fc"
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(encode("bookmark:WzEyXQ"), "bookmark:WzEyXQ");
    }
}
