//! A tolerant scan of a JSON body for one integer member, without parsing
//! it.

/// The first non-negative integer value of the top-level or nested member
/// `"name"` in a JSON text, found by a tolerant scan (no allocation, never
/// panics). Good enough for cost estimates; not a JSON parser.
pub(crate) fn json_u64(body: &[u8], name: &str) -> Option<u64> {
    let name = name.as_bytes();
    let mut from = 0;
    while let Some(pos) = find(&body[from..], name) {
        let start = from + pos;
        let end = start + name.len();
        from = end;
        // The name must be quoted: "name"
        if start == 0 || body[start - 1] != b'"' || body.get(end) != Some(&b'"') {
            continue;
        }
        let mut i = end + 1;
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if body.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let digits = body[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            continue;
        }
        let text = std::str::from_utf8(&body[i..i + digits]).ok()?;
        return Some(text.parse().unwrap_or(u64::MAX));
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_scan_finds_numbers_and_ignores_lookalikes() {
        assert_eq!(json_u64(br#"{"max_tokens": 12}"#, "max_tokens"), Some(12));
        assert_eq!(
            json_u64(br#"{"a":{"max_tokens":7}}"#, "max_tokens"),
            Some(7)
        );
        assert_eq!(
            json_u64(br#"{"not_max_tokens":3,"max_tokens":5}"#, "max_tokens"),
            Some(5)
        );
        assert_eq!(json_u64(br#"{"max_tokens":"9"}"#, "max_tokens"), None);
        assert_eq!(json_u64(br#"{"max_tokens":-1}"#, "max_tokens"), None);
        assert_eq!(json_u64(b"max_tokens", "max_tokens"), None);
        assert_eq!(json_u64(br#""max_tokens""#, "max_tokens"), None);
        assert_eq!(
            json_u64(br#"{"max_tokens":99999999999999999999999}"#, "max_tokens"),
            Some(u64::MAX)
        );
        assert_eq!(json_u64(b"\xff\xfe\"max_tokens\":\xff", "max_tokens"), None);
    }
}
