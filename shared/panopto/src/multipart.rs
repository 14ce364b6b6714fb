//! The `multipart/form-data` body of a caption upload (`POST /sessions/{id}/captions`):
//! the `language` field and the caption file.

/// A body and the `Content-Type` that names its boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Multipart {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// SRT or WebVTT (told apart by the `WEBVTT` header WebVTT files must start with).
pub(crate) fn caption_upload(language: &str, captions: &[u8]) -> Multipart {
    let text = captions.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(captions);
    let (file_name, mime) = if text.starts_with(b"WEBVTT") {
        ("captions.vtt", "text/vtt")
    } else {
        ("captions.srt", "application/x-subrip")
    };
    let mut boundary = new_boundary();
    // A boundary must not occur in the content; a random one practically never does.
    while contains(captions, boundary.as_bytes()) || language.contains(&boundary) {
        boundary = new_boundary();
    }
    let mut body = Vec::with_capacity(captions.len() + 512);
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(b"Content-Disposition: form-data; name=\"language\"\r\n\r\n");
    body.extend_from_slice(language.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        format!(
            "Content-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(captions);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Multipart {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    }
}

fn new_boundary() -> String {
    format!("coursewire-{}", uuid::Uuid::new_v4().simple())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_language_and_the_file_and_keeps_the_bytes() {
        let srt = b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHello\r\n";
        let upload = caption_upload("English_USA", srt);
        let boundary = upload
            .content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let text = String::from_utf8(upload.body.clone()).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"language\"\r\n\r\nEnglish_USA\r\n"));
        assert!(text.contains("filename=\"captions.srt\""));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        assert!(contains(&upload.body, srt));
        let vtt = caption_upload("German", b"WEBVTT\n\n00:01.000 --> 00:02.000\nHallo\n");
        assert!(String::from_utf8(vtt.body).unwrap().contains("text/vtt"));
    }
}
