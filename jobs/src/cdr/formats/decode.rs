//! Text that is not UTF-8. Switches write whatever bytes their users' names are made of: a
//! Windows-1251 caller name in an otherwise ASCII file is common. UTF-8 is tried first, field
//! by field; a field that is not UTF-8 is decoded with the charset the request declares, or
//! Windows-1252 (a superset of Latin-1 that gives every byte a character), so no file is
//! refused for a byte in a name.

use encoding_rs::Encoding;
use std::borrow::Cow;

/// A character set, by its WHATWG label (`windows-1251`, `latin1`, `koi8-r`, ...).
pub type Charset = &'static Encoding;

/// The charset for a label, or why it is not one.
pub fn parse_charset(label: &str) -> Result<Charset, String> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        format!(
            "unknown charset {label:?}; use a label such as utf-8, windows-1252, windows-1251 or iso-8859-1"
        )
    })
}

/// The body as UTF-8-or-not bytes without a byte-order mark: UTF-16 bodies (told by their
/// mark) are converted whole, a UTF-8 mark is dropped, anything else is left for
/// [`decode_field`].
pub fn to_utf8(body: &[u8]) -> Cow<'_, [u8]> {
    match Encoding::for_bom(body) {
        Some((enc, bom)) if enc == encoding_rs::UTF_8 => Cow::Borrowed(&body[bom..]),
        Some((enc, _)) => {
            let (text, _, _) = enc.decode(body);
            Cow::Owned(text.into_owned().into_bytes())
        }
        None => Cow::Borrowed(body),
    }
}

/// Text from bytes: UTF-8 where it is, the declared charset (else Windows-1252) where it is
/// not. Decided run by run of non-ASCII bytes, so one odd name does not garble the valid
/// UTF-8 around it (a JSON body is decoded whole, one record's name among many).
pub fn decode_field(bytes: &[u8], charset: Option<Charset>) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let enc = charset.unwrap_or(encoding_rs::WINDOWS_1252);
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut rest = bytes;
    while !rest.is_empty() {
        let ascii = rest.iter().position(|b| !b.is_ascii()).unwrap_or(rest.len());
        out.push_str(std::str::from_utf8(&rest[..ascii]).unwrap_or_default());
        rest = &rest[ascii..];
        let run = rest.iter().position(u8::is_ascii).unwrap_or(rest.len());
        match std::str::from_utf8(&rest[..run]) {
            Ok(s) => out.push_str(s),
            Err(_) => out.push_str(&enc.decode_without_bom_handling(&rest[..run]).0),
        }
        rest = &rest[run..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_first_then_declared_then_windows_1252() {
        assert_eq!(decode_field("Zoë".as_bytes(), None), "Zoë");
        assert_eq!(decode_field(b"\xa5", None), "¥");
        let cyrillic = parse_charset("windows-1251").unwrap();
        assert_eq!(decode_field(b"\xa5", Some(cyrillic)), "Ґ");
        assert_eq!(decode_field(b"\xcf\xe5\xf2\xf0", Some(cyrillic)), "Петр");
        // Valid UTF-8 wins over a declared charset.
        assert_eq!(decode_field("Петр".as_bytes(), Some(cyrillic)), "Петр");
        assert!(parse_charset("klingon").is_err());
        // Valid UTF-8 beside an odd byte stays as it is.
        let mixed = [b"Zo\xc3\xab & ".as_slice(), b"\xcf\xe5\xf2\xf0"].concat();
        assert_eq!(decode_field(&mixed, Some(cyrillic)), "Zoë & Петр");
    }

    #[test]
    fn byte_order_marks_are_honoured() {
        assert_eq!(&*to_utf8(b"\xef\xbb\xbfa,b"), b"a,b");
        assert_eq!(&*to_utf8(b"\xff\xfea\x00,\x00b\x00"), b"a,b");
        assert_eq!(&*to_utf8(b"a,\xa5"), b"a,\xa5");
    }
}
