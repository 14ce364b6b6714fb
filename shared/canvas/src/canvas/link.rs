//! RFC 8288 `Link` headers, the way Canvas paginates REST lists. The `next` URL is opaque
//! (Canvas uses bookmarks, not page numbers), so it is followed as given, never computed.

/// One link of a `Link` header: its target and its parameters (names lower-cased, values
/// unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub params: Vec<(String, String)>,
}

impl Link {
    /// Whether `rel` (a space-separated list of relation types) includes `relation`.
    pub fn has_rel(&self, relation: &str) -> bool {
        self.params
            .iter()
            .filter(|(name, _)| name == "rel")
            .flat_map(|(_, value)| value.split_ascii_whitespace())
            .any(|rel| rel.eq_ignore_ascii_case(relation))
    }
}

/// Every link of one header value. Tolerant: a malformed element is skipped, not fatal.
pub fn parse_link_header(value: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return links;
        }
        let Some(after_open) = rest.strip_prefix('<') else {
            rest = skip_element(rest);
            continue;
        };
        let Some(close) = after_open.find('>') else {
            return links;
        };
        let target = after_open[..close].trim().to_string();
        rest = &after_open[close + 1..];
        let mut params = Vec::new();
        while let Some(after_semicolon) = rest.trim_start().strip_prefix(';') {
            let (param, remaining) = parse_param(after_semicolon);
            params.extend(param);
            rest = remaining;
        }
        rest = skip_element(rest);
        links.push(Link { target, params });
    }
}

/// The `rel="next"` target over all `Link` header values of a response.
pub fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values
        .into_iter()
        .flat_map(parse_link_header)
        .find(|link| link.has_rel("next"))
        .map(|link| link.target)
}

/// `name[=value]` after a `;`; the value is a token or a quoted string with `\` escapes.
/// Answers the parameter (`None` when nameless) and what follows it.
fn parse_param(input: &str) -> (Option<(String, String)>, &str) {
    let input = input.trim_start();
    let name_end = input
        .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_whitespace())
        .unwrap_or(input.len());
    let name = input[..name_end].to_ascii_lowercase();
    let mut rest = input[name_end..].trim_start();
    let mut value = String::new();
    if let Some(after_equals) = rest.strip_prefix('=') {
        let after_equals = after_equals.trim_start();
        if let Some(quoted) = after_equals.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    other => value.push(other),
                }
            }
            rest = &quoted[end..];
        } else {
            let end = after_equals.find([';', ',']).unwrap_or(after_equals.len());
            value = after_equals[..end].trim().to_string();
            rest = &after_equals[end..];
        }
    }
    let param = (!name.is_empty()).then_some((name, value));
    (param, rest)
}

/// Skips to the next `,` that is outside a quoted string (the end of a link element).
fn skip_element(input: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in input.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return &input[i + 1..],
            _ => {}
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_among_canvas_links() {
        let header = "<https://canvas.test/api/v1/courses/1/enrollments?page=bookmark:WzEsMl0&per_page=100>; rel=\"current\",<https://canvas.test/api/v1/courses/1/enrollments?page=bookmark:WzMsNF0&per_page=100>; rel=\"next\",<https://canvas.test/api/v1/courses/1/enrollments?page=first&per_page=100>; rel=\"first\"";
        assert_eq!(
            next_link([header]).as_deref(),
            Some(
                "https://canvas.test/api/v1/courses/1/enrollments?page=bookmark:WzMsNF0&per_page=100"
            )
        );
        assert_eq!(parse_link_header(header).len(), 3);
    }

    #[test]
    fn tolerates_params_in_any_order_unquoted_values_and_several_rels() {
        let header = r#"<https://a.test/p?x=1,2>;title="a, \"b\"; c";REL=next ; type=text/json, </last>; rel="last prev""#;
        let links = parse_link_header(header);
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].target, "https://a.test/p?x=1,2");
        assert!(links[0].has_rel("next"));
        assert_eq!(
            links[0].params[0],
            ("title".to_string(), "a, \"b\"; c".to_string())
        );
        assert_eq!(links[0].params[2], ("type".into(), "text/json".into()));
        assert!(links[1].has_rel("prev") && links[1].has_rel("last"));
        assert!(!links[1].has_rel("next"));
    }

    #[test]
    fn reads_next_from_any_of_several_headers_and_skips_garbage() {
        assert_eq!(
            next_link([
                "<https://a.test/1>; rel=prev",
                "junk; rel=next, <https://a.test/3>; rel=\"Next\""
            ])
            .as_deref(),
            Some("https://a.test/3")
        );
        assert_eq!(next_link(["<https://a.test/1>; rel=\"last\""]), None);
        assert_eq!(next_link(["", "<unterminated; rel=next"]), None);
        assert_eq!(next_link(Vec::<&str>::new()), None);
    }
}
