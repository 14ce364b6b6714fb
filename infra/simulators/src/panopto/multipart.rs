//! Reads a `multipart/form-data` body (the caption upload): its parts' names, file names and
//! bytes.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary named by a `Content-Type` header.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The parts of `body`, or why it is not multipart.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut at = find(body, delimiter.as_bytes(), 0).ok_or("no multipart boundary in the body")?;
    loop {
        at += delimiter.len();
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        at += 2; // CRLF after the delimiter
        let headers_end = find(body, b"\r\n\r\n", at).ok_or("a part has no header end")?;
        let headers = String::from_utf8_lossy(&body[at..headers_end]).into_owned();
        let data_start = headers_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), data_start)
            .ok_or("a part is not closed by the boundary")?;
        let disposition = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or("a part has no Content-Disposition")?;
        parts.push(Part {
            name: param(disposition, "name").ok_or("a part has no name")?,
            file_name: param(disposition, "filename"),
            data: body[data_start..next].to_vec(),
        });
        at = next + 2;
    }
}

/// `name="value"` from a header line.
fn param(line: &str, name: &str) -> Option<String> {
    line.split(';').skip(1).find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_files() {
        let body = b"--b1\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nEnglish_USA\r\n\
--b1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.srt\"\r\nContent-Type: application/x-subrip\r\n\r\n1\r\n00:00:01,000 --> 00:00:02,000\r\nHi\r\n\r\n--b1--\r\n";
        assert_eq!(
            boundary("multipart/form-data; boundary=\"b1\"").as_deref(),
            Some("b1")
        );
        assert_eq!(boundary("application/json"), None);
        let parts = parse(body, "b1").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "language");
        assert_eq!(parts[0].data, b"English_USA");
        assert_eq!(parts[1].file_name.as_deref(), Some("c.srt"));
        assert_eq!(
            parts[1].data,
            b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHi\r\n"
        );
        assert!(parse(b"garbage", "b1").is_err());
    }
}
