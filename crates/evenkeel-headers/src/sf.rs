//! A small, allocation-free reader for RFC 9651 Structured Field Values:
//! Lists and Dictionaries of Items with Parameters, every bare item type.
//!
//! Parsing follows RFC 9651 §4.2: a field that does not parse is refused as
//! a whole. Inner Lists are validated and skipped (no rate-limit header uses
//! them). Strings, tokens and byte sequences are borrowed from the input;
//! strings keep their escapes and are compared or copied through
//! [`SfString`].

/// A bare item (RFC 9651 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bare<'a> {
    /// `42`, `-17`: at most 15 digits.
    Integer(i64),
    /// `4.5`: stored in thousandths (at most three fractional digits).
    Decimal(i64),
    /// `"hello"`, escapes kept.
    String(SfString<'a>),
    /// `foo123/456`.
    Token(&'a [u8]),
    /// `:cHJl...:`, the base64 text between the colons.
    Binary(&'a [u8]),
    /// `?1`.
    Boolean(bool),
    /// `@1659578233`.
    Date(i64),
    /// `%"f%c3%bc"`, the raw percent-encoded text between the quotes.
    DisplayString(&'a [u8]),
}

/// The raw content of an sf-string (between the quotes, escapes kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SfString<'a>(&'a [u8]);

impl SfString<'_> {
    /// The unescaped bytes.
    pub(crate) fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let mut it = self.0.iter().copied();
        std::iter::from_fn(move || match it.next()? {
            b'\\' => it.next(),
            c => Some(c),
        })
    }

    /// `true` when the unescaped value is `s`.
    pub(crate) fn eq_bytes(&self, s: &[u8]) -> bool {
        self.bytes().eq(s.iter().copied())
    }

    /// The unescaped value (always ASCII, so always valid UTF-8).
    pub(crate) fn to_owned_string(self) -> String {
        self.bytes().map(char::from).collect()
    }
}

/// Parameters of an item (RFC 9651 §3.1.2), already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params<'a>(&'a [u8]);

impl<'a> Params<'a> {
    /// Each `(key, value)` in order; a key without a value is `?1`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a [u8], Bare<'a>)> + 'a {
        let mut p = Parser::new(self.0);
        std::iter::from_fn(move || p.param().ok().flatten())
    }

    /// The value of `key`; the last one wins when a key repeats (RFC 9651
    /// §4.2.3.2).
    pub(crate) fn get(&self, key: &[u8]) -> Option<Bare<'a>> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }
}

/// A list or dictionary member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member<'a> {
    /// An Item with its Parameters.
    Item(Bare<'a>, Params<'a>),
    /// An Inner List (its content is not kept).
    InnerList,
}

/// Parses `input` as an sf-list. `None` when it is not one.
pub(crate) fn list(input: &[u8]) -> Option<impl Iterator<Item = Member<'_>>> {
    // Validate the whole field first: a field that fails anywhere is
    // ignored as a whole, so nothing may be acted on before the end.
    Parser::new(input).list(|_| {}).ok()?;
    let mut p = Parser::new(input);
    p.skip_sp();
    let mut first = true;
    Some(std::iter::from_fn(move || {
        if p.at_end() {
            return None;
        }
        if !first {
            p.skip_ows();
            p.i += 1; // the validated ','
            p.skip_ows();
        }
        first = false;
        p.member().ok()
    }))
}

/// Parses `input` as an sf-dictionary. `None` when it is not one. Keys may
/// repeat; callers that care take the last one (RFC 9651 §4.2.2).
pub(crate) fn dictionary(input: &[u8]) -> Option<impl Iterator<Item = (&[u8], Member<'_>)>> {
    Parser::new(input).dictionary(|_, _| {}).ok()?;
    let mut p = Parser::new(input);
    p.skip_sp();
    let mut first = true;
    Some(std::iter::from_fn(move || {
        if p.at_end() {
            return None;
        }
        if !first {
            p.skip_ows();
            p.i += 1;
            p.skip_ows();
        }
        first = false;
        p.dict_member().ok()
    }))
}

type Res<T> = Result<T, ()>;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_key_start(c: u8) -> bool {
    c.is_ascii_lowercase() || c == b'*'
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c)
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Self {
        Self { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// RFC 9651 §4.2.1 (without the final trailing-SP rule, handled by
    /// treating trailing SP as OWS before the end).
    fn list(&mut self, mut each: impl FnMut(Member<'a>)) -> Res<()> {
        self.skip_sp();
        if self.at_end() {
            return Ok(());
        }
        loop {
            each(self.member()?);
            self.skip_ows();
            if self.at_end() {
                return Ok(());
            }
            if self.peek() != Some(b',') {
                return Err(());
            }
            self.i += 1;
            self.skip_ows();
            if self.at_end() {
                return Err(()); // trailing comma
            }
        }
    }

    fn dictionary(&mut self, mut each: impl FnMut(&'a [u8], Member<'a>)) -> Res<()> {
        self.skip_sp();
        if self.at_end() {
            return Ok(());
        }
        loop {
            let (k, m) = self.dict_member()?;
            each(k, m);
            self.skip_ows();
            if self.at_end() {
                return Ok(());
            }
            if self.peek() != Some(b',') {
                return Err(());
            }
            self.i += 1;
            self.skip_ows();
            if self.at_end() {
                return Err(());
            }
        }
    }

    fn dict_member(&mut self) -> Res<(&'a [u8], Member<'a>)> {
        let key = self.key()?;
        if self.peek() == Some(b'=') {
            self.i += 1;
            Ok((key, self.member()?))
        } else {
            let params = self.params()?;
            Ok((key, Member::Item(Bare::Boolean(true), params)))
        }
    }

    fn member(&mut self) -> Res<Member<'a>> {
        if self.peek() == Some(b'(') {
            self.inner_list()?;
            Ok(Member::InnerList)
        } else {
            let bare = self.bare()?;
            let params = self.params()?;
            Ok(Member::Item(bare, params))
        }
    }

    fn inner_list(&mut self) -> Res<()> {
        self.i += 1; // '('
        loop {
            self.skip_sp();
            match self.peek() {
                Some(b')') => {
                    self.i += 1;
                    self.params()?;
                    return Ok(());
                }
                None => return Err(()),
                _ => {
                    self.bare()?;
                    self.params()?;
                    if !matches!(self.peek(), Some(b' ' | b')')) {
                        return Err(());
                    }
                }
            }
        }
    }

    fn params(&mut self) -> Res<Params<'a>> {
        let start = self.i;
        while self.peek() == Some(b';') {
            self.param()?;
        }
        Ok(Params(&self.s[start..self.i]))
    }

    /// One `;key[=value]`; `Ok(None)` when no `;` follows.
    fn param(&mut self) -> Res<Option<(&'a [u8], Bare<'a>)>> {
        if self.peek() != Some(b';') {
            return Ok(None);
        }
        self.i += 1;
        self.skip_sp();
        let key = self.key()?;
        let value = if self.peek() == Some(b'=') {
            self.i += 1;
            self.bare()?
        } else {
            Bare::Boolean(true)
        };
        Ok(Some((key, value)))
    }

    fn key(&mut self) -> Res<&'a [u8]> {
        let start = self.i;
        if !self.peek().is_some_and(is_key_start) {
            return Err(());
        }
        while self.peek().is_some_and(is_key_char) {
            self.i += 1;
        }
        Ok(&self.s[start..self.i])
    }

    fn bare(&mut self) -> Res<Bare<'a>> {
        match self.peek().ok_or(())? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b':' => self.binary(),
            b'?' => self.boolean(),
            b'@' => {
                self.i += 1;
                match self.number()? {
                    Bare::Integer(v) => Ok(Bare::Date(v)),
                    _ => Err(()),
                }
            }
            b'%' => self.display_string(),
            c if c.is_ascii_alphabetic() || c == b'*' => Ok(self.token()),
            _ => Err(()),
        }
    }

    /// RFC 9651 §4.2.4.
    fn number(&mut self) -> Res<Bare<'a>> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let mut int: i64 = 0;
        let mut int_digits = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            int = int * 10 + i64::from(c - b'0');
            int_digits += 1;
            self.i += 1;
            if int_digits > 15 {
                return Err(());
            }
        }
        if int_digits == 0 {
            return Err(());
        }
        let sign = if negative { -1 } else { 1 };
        if self.peek() != Some(b'.') {
            return Ok(Bare::Integer(sign * int));
        }
        if int_digits > 12 {
            return Err(());
        }
        self.i += 1;
        let mut frac: i64 = 0;
        let mut frac_digits = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            frac = frac * 10 + i64::from(c - b'0');
            frac_digits += 1;
            self.i += 1;
            if frac_digits > 3 {
                return Err(());
            }
        }
        if frac_digits == 0 {
            return Err(());
        }
        for _ in frac_digits..3 {
            frac *= 10;
        }
        Ok(Bare::Decimal(sign * (int * 1000 + frac)))
    }

    fn string(&mut self) -> Res<Bare<'a>> {
        self.i += 1;
        let start = self.i;
        loop {
            match self.peek().ok_or(())? {
                b'\\' => {
                    self.i += 1;
                    if !matches!(self.peek(), Some(b'"' | b'\\')) {
                        return Err(());
                    }
                    self.i += 1;
                }
                b'"' => {
                    let s = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(Bare::String(SfString(s)));
                }
                0x20..=0x7e => self.i += 1,
                _ => return Err(()),
            }
        }
    }

    fn token(&mut self) -> Bare<'a> {
        let start = self.i;
        self.i += 1;
        while self
            .peek()
            .is_some_and(|c| is_tchar(c) || c == b':' || c == b'/')
        {
            self.i += 1;
        }
        Bare::Token(&self.s[start..self.i])
    }

    fn binary(&mut self) -> Res<Bare<'a>> {
        self.i += 1;
        let start = self.i;
        loop {
            match self.peek().ok_or(())? {
                b':' => {
                    let b = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(Bare::Binary(b));
                }
                c if c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=' => {
                    self.i += 1;
                }
                _ => return Err(()),
            }
        }
    }

    fn boolean(&mut self) -> Res<Bare<'a>> {
        self.i += 1;
        let v = match self.peek() {
            Some(b'0') => false,
            Some(b'1') => true,
            _ => return Err(()),
        };
        self.i += 1;
        Ok(Bare::Boolean(v))
    }

    /// RFC 9651 §4.2.10, including the check that the decoded bytes are
    /// UTF-8 (done as a stream, without a buffer).
    fn display_string(&mut self) -> Res<Bare<'a>> {
        self.i += 1;
        if self.peek() != Some(b'"') {
            return Err(());
        }
        self.i += 1;
        let start = self.i;
        let mut utf8 = Utf8Check::default();
        loop {
            let c = self.peek().ok_or(())?;
            match c {
                b'%' => {
                    let hex = |c: u8| match c {
                        b'0'..=b'9' => Ok(c - b'0'),
                        b'a'..=b'f' => Ok(c - b'a' + 10),
                        _ => Err(()),
                    };
                    let hi = hex(*self.s.get(self.i + 1).ok_or(())?)?;
                    let lo = hex(*self.s.get(self.i + 2).ok_or(())?)?;
                    utf8.push(hi << 4 | lo)?;
                    self.i += 3;
                }
                b'"' => {
                    utf8.finish()?;
                    let s = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(Bare::DisplayString(s));
                }
                0x20..=0x7e => {
                    utf8.push(c)?;
                    self.i += 1;
                }
                _ => return Err(()),
            }
        }
    }
}

/// Streaming UTF-8 validation (shortest forms, no surrogates, ≤ U+10FFFF).
#[derive(Default)]
struct Utf8Check {
    need: u8,
    lo: u8,
    hi: u8,
}

impl Utf8Check {
    fn push(&mut self, b: u8) -> Res<()> {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return Err(());
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xbf;
            return Ok(());
        }
        (self.need, self.lo, self.hi) = match b {
            0x00..=0x7f => return Ok(()),
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            _ => return Err(()),
        };
        Ok(())
    }

    fn finish(&self) -> Res<()> {
        if self.need == 0 { Ok(()) } else { Err(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &str) -> Option<Vec<Member<'_>>> {
        list(s.as_bytes()).map(Iterator::collect)
    }

    fn one(s: &str) -> Bare<'_> {
        match items(s).expect(s)[..] {
            [Member::Item(b, _)] => b,
            ref other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn rfc_9651_item_examples() {
        assert_eq!(one("42"), Bare::Integer(42));
        assert_eq!(one("-42"), Bare::Integer(-42));
        assert_eq!(one("4.5"), Bare::Decimal(4500));
        assert_eq!(one("-0.001"), Bare::Decimal(-1));
        assert!(matches!(one(r#""hello world""#), Bare::String(s) if s.eq_bytes(b"hello world")));
        assert!(matches!(one(r#""a\"b\\c""#), Bare::String(s) if s.eq_bytes(br#"a"b\c"#)));
        assert_eq!(one("foo123/456"), Bare::Token(b"foo123/456"));
        assert_eq!(
            one(":cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:"),
            Bare::Binary(b"cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==")
        );
        assert_eq!(one("?1"), Bare::Boolean(true));
        assert_eq!(one("?0"), Bare::Boolean(false));
        assert_eq!(one("@1659578233"), Bare::Date(1_659_578_233));
        assert_eq!(
            one(r#"%"This is intended for display to %c3%bcsers.""#),
            Bare::DisplayString(b"This is intended for display to %c3%bcsers.")
        );
    }

    #[test]
    fn rfc_9651_list_examples() {
        let l = items("sugar, tea, rum").unwrap();
        assert_eq!(l.len(), 3);
        assert!(matches!(l[1], Member::Item(Bare::Token(b"tea"), _)));

        let l = items(r#"("foo" "bar"), ("baz"), ("bat" "one"), ()"#).unwrap();
        assert_eq!(l, vec![Member::InnerList; 4]);

        let l = items(r#"abc;a=1;b=2; cde_456, (ghi;jk=4 l);q="9";r=w"#).unwrap();
        assert_eq!(l.len(), 2);
        let Member::Item(Bare::Token(b"abc"), p) = l[0] else {
            panic!("{:?}", l[0])
        };
        assert_eq!(p.get(b"a"), Some(Bare::Integer(1)));
        assert_eq!(p.get(b"b"), Some(Bare::Integer(2)));
        assert_eq!(p.get(b"cde_456"), Some(Bare::Boolean(true)));
        assert_eq!(p.get(b"zz"), None);
        assert_eq!(items("").unwrap(), vec![]);
        assert_eq!(items("   ").unwrap(), vec![]);
    }

    #[test]
    fn rfc_9651_dictionary_examples() {
        let d: Vec<_> = dictionary(br#"en="Applepie", da=:w4ZibGV0w6ZydGUK:"#)
            .unwrap()
            .collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, b"en");
        assert!(matches!(
            d[1].1,
            Member::Item(Bare::Binary(b"w4ZibGV0w6ZydGUK"), _)
        ));

        let d: Vec<_> = dictionary(b"a=?0, b, c; foo=bar").unwrap().collect();
        assert!(matches!(d[0].1, Member::Item(Bare::Boolean(false), _)));
        assert!(matches!(d[1].1, Member::Item(Bare::Boolean(true), _)));
        let Member::Item(Bare::Boolean(true), p) = d[2].1 else {
            panic!()
        };
        assert_eq!(p.get(b"foo"), Some(Bare::Token(b"bar")));

        let d: Vec<_> = dictionary(b"rating=1.5, feelings=(joy sadness)")
            .unwrap()
            .collect();
        assert_eq!(d[0].1, Member::Item(Bare::Decimal(1500), Params(b"")));
        assert_eq!(d[1].1, Member::InnerList);
    }

    #[test]
    fn ietf_rate_limit_examples_parse() {
        let l = items(r#""burst";q=100;w=60,"daily";q=1000;w=86400"#).unwrap();
        assert_eq!(l.len(), 2);
        let Member::Item(Bare::String(name), p) = l[1] else {
            panic!()
        };
        assert!(name.eq_bytes(b"daily"));
        assert_eq!(p.get(b"q"), Some(Bare::Integer(1000)));
        assert_eq!(p.get(b"w"), Some(Bare::Integer(86400)));
        let l = items(r#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:"#).unwrap();
        let Member::Item(_, p) = l[0] else { panic!() };
        assert!(matches!(p.get(b"qu"), Some(Bare::String(s)) if s.eq_bytes(b"content-bytes")));
        assert_eq!(p.get(b"pk"), Some(Bare::Binary(b"sdfjLJUOUH==")));
    }

    #[test]
    fn repeated_parameters_keep_the_last() {
        let l = items("a;q=1;q=2").unwrap();
        let Member::Item(_, p) = l[0] else { panic!() };
        assert_eq!(p.get(b"q"), Some(Bare::Integer(2)));
    }

    #[test]
    fn malformed_fields_are_refused_whole() {
        for bad in [
            "a,",
            ",a",
            "a,,b",
            "a b",
            "1234567890123456",
            "1234567890123.0",
            "1.2345",
            "1.",
            "-",
            "\"unterminated",
            "\"bad\\escape\"",
            "\"tab\tinside\"",
            ":bad base64:",
            ":unterminated",
            "?2",
            "@1.5",
            "a;Q=1",
            "a;=1",
            "(a b",
            "(a b)c",
            "a;q=",
            "%\"%C3%BC\"",
            "%\"%c3\"",
            "%\"%ff\"",
            "%nope",
            "é",
            "\"é\"",
            "a\u{7f}",
            "<",
        ] {
            assert!(list(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(dictionary(b"A=1").is_none());
        assert!(dictionary(b"a=1,").is_none());
        assert!(dictionary(b"a=").is_none());
    }

    #[test]
    fn strings_unescape_into_owned_text() {
        let Bare::String(s) = one(r#""x\"y""#) else {
            panic!()
        };
        assert_eq!(s.to_owned_string(), "x\"y");
    }
}
