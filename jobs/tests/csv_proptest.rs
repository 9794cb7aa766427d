//! Property tests of CSV reading: whatever bytes a client posts as a file, with or without a
//! named, saved or detected layout, every row comes back as a record or as a refusal with
//! its line, or the file as a whole is refused; never a panic.

use jobs::cdr::formats::{
    CsvOptions, Identity, Layout, MAPPABLE_FIELDS, builtin_layouts, decode_field, parse_charset, read_csv,
    to_utf8,
};
use jobs::cdr::parse_records;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Bytes made mostly of what CSV parsing turns on: separators, quotes, line ends, escapes,
/// byte-order marks and stray non-UTF-8 bytes.
fn csvish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        b",".as_slice(),
        b"\"",
        b"\"\"",
        b"\n",
        b"\r\n",
        b"\r",
        b"\\",
        b" ",
        b"a",
        b"1",
        b"2026-03-01 10:00:00",
        b"1700000000.1",
        b"ANSWERED",
        b"start_time",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"\xfe\xff",
        b"\xa5",
        b"\xc3",
        b"\x00",
    ]);
    prop::collection::vec(pieces, 0..200).prop_map(|p| p.concat())
}

/// A field as the columns of real files hold them, or anything.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(MAPPABLE_FIELDS.to_vec()).prop_map(str::to_string),
        prop::sample::select(vec![
            "2026-03-01 10:00:00",
            "2026/3/1 10:00",
            "2026-03-01T10:00:00+02:00",
            "+262142-12-31 23:59:59",
            "-262143-01-01 00:00:00",
            "1700000000",
            "1700000000.1",
            "pbx-1700000000.12",
            "0:01:05",
            "65.432",
            "999999:99:99",
            "ANSWERED",
            "NO ANSWER",
            "CHANUNAVAIL",
            "NORMAL_CLEARING",
            "uniqueid",
            "\"A\" <100>",
            "",
            " ",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        "\\PC{0,20}",
    ]
}

/// Rows as wide as some built-in layout (so detection has candidates to weigh), or not.
fn rows() -> impl Strategy<Value = Vec<Vec<String>>> {
    let widths: Vec<usize> =
        builtin_layouts().iter().map(|b| b.layout.columns.len()).filter(|n| *n > 0).collect();
    (prop::sample::select(widths), 1_usize..8).prop_flat_map(|(width, n)| {
        let widths = prop_oneof![3 => Just(width), 1 => 0..width + 3];
        prop::collection::vec(widths.prop_flat_map(|w| prop::collection::vec(field(), w)), n)
    })
}

fn csv_body(rows: &[Vec<String>]) -> Vec<u8> {
    let mut body = Vec::new();
    {
        let mut w = csv::WriterBuilder::new().flexible(true).from_writer(&mut body);
        for row in rows {
            w.write_record(row).expect("write to memory");
        }
    }
    body
}

/// A layout as a client could save one (`PUT /mappings/{name}`), valid or not.
fn layouts() -> impl Strategy<Value = Layout> {
    let columns = prop::collection::vec(field(), 0..6);
    let fields = prop::collection::btree_map(prop::sample::select(MAPPABLE_FIELDS.to_vec()), field(), 0..5);
    let values = prop::collection::btree_map(
        prop::sample::select(vec!["disposition", "direction", "call_successful"]),
        prop::collection::btree_map(field(), field(), 0..3),
        0..2,
    );
    (
        columns,
        fields,
        prop::collection::vec("[%a-zA-Z .:/-]{0,10}", 0..2),
        prop::option::of(prop::sample::select(vec![
            "UTC",
            "Europe/Paris",
            "Pacific/Kiritimati",
            "Nowhere/Else",
        ])),
        values,
        any::<bool>(),
    )
        .prop_map(|(columns, fields, time_formats, timezone, values, by_row)| Layout {
            description: String::new(),
            columns,
            fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            time_formats,
            timezone: timezone.map(str::to_string),
            values: values
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<BTreeMap<String, BTreeMap<String, String>>>(),
            identity: if by_row { Identity::Row } else { Identity::CallId },
        })
}

/// Reads a file and checks what holds of every file read: lines count from 1 upwards in
/// order, within the file, and every readable row gives an object for validation, which
/// takes it or refuses it by field.
fn read_and_check(body: &[u8], options: &CsvOptions) -> Result<(), TestCaseError> {
    let Ok(file) = read_csv(body, options) else { return Ok(()) };
    let lines = to_utf8(body).iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let mut previous = 1;
    let mut records = Vec::new();
    for (line, record) in &file.records {
        prop_assert!((previous..=lines).contains(line), "line {line} after {previous} of {lines}");
        previous = *line;
        if let Ok(r) = record {
            prop_assert!(r.is_object() || (r.is_null() && file.layout == "unreadable"), "{r}");
            records.push(r.clone());
        }
    }
    let (valid, refused) = parse_records(&records, "csv");
    prop_assert_eq!(valid.len() + refused.len(), records.len());
    for e in refused {
        prop_assert!(!e.field.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// Any bytes at all, layout detected.
    #[test]
    fn any_bytes_are_read_or_refused(body in prop::collection::vec(any::<u8>(), 0..600)) {
        read_and_check(&body, &CsvOptions::default())?;
    }

    /// CSV-shaped bytes (quotes left open, mixed line ends, marks, odd bytes), detected and
    /// with each built-in layout named, in any declared charset.
    #[test]
    fn csvish_bytes_are_read_or_refused(
        body in csvish_bytes(),
        charset in prop::sample::select(vec!["utf-8", "windows-1251", "koi8-r", "shift_jis", "utf-16le"]),
    ) {
        let charset = parse_charset(charset).ok();
        read_and_check(&body, &CsvOptions { charset, ..CsvOptions::default() })?;
        for b in builtin_layouts() {
            read_and_check(&body, &CsvOptions { layout: Some((b.name.clone(), b.layout.clone())), charset, ..CsvOptions::default() })?;
        }
    }

    /// Rows of plausible and implausible fields, at the widths of the built-in layouts:
    /// detection weighs them, and the chosen layout maps every row or refuses it.
    #[test]
    fn rows_of_any_fields_are_detected_and_mapped_or_refused(rows in rows()) {
        read_and_check(&csv_body(&rows), &CsvOptions::default())?;
        read_and_check(&csv_body(&rows), &CsvOptions { layout: Some(("generic".into(), Layout::default())), ..CsvOptions::default() })?;
    }

    /// A saved layout of any shape, valid or not: named by the request, or tried first by
    /// detection.
    #[test]
    fn any_saved_layout_reads_or_refuses(layout in layouts(), rows in rows()) {
        let _ = layout.validate();
        let body = csv_body(&rows);
        read_and_check(&body, &CsvOptions { layout: Some(("mine".into(), layout.clone())), ..CsvOptions::default() })?;
        read_and_check(&body, &CsvOptions { saved: vec![("mine".into(), layout)], ..CsvOptions::default() })?;
    }

    /// Decoding never loses valid UTF-8 and always gives text.
    #[test]
    fn fields_decode_to_text(bytes in prop::collection::vec(any::<u8>(), 0..64), s in "\\PC{0,20}") {
        let _ = decode_field(&bytes, None);
        let cyrillic = parse_charset("windows-1251").ok();
        prop_assert_eq!(decode_field(s.as_bytes(), cyrillic), s);
    }
}

#[test]
fn a_known_file_is_read_so_the_checks_above_have_something_to_hold() {
    // Anchors the properties: a well-formed Asterisk row is read as one valid record.
    let row = "\"\",\"1\",\"2\",\"d\",\"\",\"c\",\"\",\"a\",\"\",\"2026-01-01 00:00:00\",\"\",\"2026-01-01 00:00:01\",1,0,\"NO ANSWER\",\"DOCUMENTATION\",\"1.1\",\"\"\n";
    let file = read_csv(row.as_bytes(), &CsvOptions::default()).expect("read");
    assert_eq!(file.layout, "asterisk");
    let records: Vec<_> = file.records.into_iter().map(|(_, r)| r.expect("a record")).collect();
    let (valid, refused) = parse_records(&records, "csv");
    assert_eq!((valid.len(), refused.len()), (1, 0));
}
