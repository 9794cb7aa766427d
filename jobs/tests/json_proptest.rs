//! Property tests of the JSON bodies a client posts: records of any shape to `/cdrs`, and
//! FreeSWITCH `mod_json_cdr` posts of any bytes. A record is stored with its invariants or
//! refused by field; a post is read or refused; never a panic.

use base64::Engine as _;
use jobs::cdr::formats::freeswitch_json::{ValueEncoding, document, example, record};
use jobs::cdr::{Disposition, parse_record};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Every name a record field is read under, and some it is not.
const KEYS: [&str; 34] = [
    "call_id",
    "uniqueid",
    "uuid",
    "callid",
    "record_key",
    "sequence",
    "source",
    "switch",
    "src_number",
    "src",
    "caller_id_number",
    "dest_number",
    "dst",
    "start_time",
    "start",
    "start_stamp",
    "answer_time",
    "end_time",
    "end",
    "duration",
    "call_duration",
    "billsec",
    "disposition",
    "disposition_raw",
    "call_successful",
    "hangup_cause",
    "direction",
    "account_code",
    "accountcode",
    "linked_id",
    "bleg_uuid",
    "extra",
    "timestamp",
    "\u{0}",
];

/// Scalars that matter to the record parser: times, seconds, flags, dispositions, causes,
/// text with NULs, numbers at every edge.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (0_i64..4_200_000_000).prop_map(|s| json!(s)),
        prop::sample::select(vec![
            "2026-03-01T10:00:00Z",
            "2026-03-01 10:01:05",
            "2100-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "+262142-12-31T23:59:59Z",
            "1772359200",
            "ANSWERED",
            "no answer",
            "USER_BUSY",
            "NORMAL_CLEARING",
            "yes",
            "0",
            "-1",
            "2147483648",
            "1.5",
            "anonymous",
            "a\u{0}b",
            "",
            " ",
        ])
        .prop_map(|s| json!(s)),
        "\\PC{0,300}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A record: an object over the known field names, each with any value.
fn record_map() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(KEYS.to_vec()),
        prop_oneof![4 => scalar(), 1 => json_value()],
        0..14,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>()))
}

/// A mod_json_cdr document: `variables` of any values (the time ones included), and a
/// callflow of either version's shape.
fn freeswitch_doc() -> impl Strategy<Value = Value> {
    let var_names = prop::sample::select(vec![
        "uuid",
        "start_uepoch",
        "start_epoch",
        "start_stamp",
        "answer_uepoch",
        "end_uepoch",
        "end_epoch",
        "duration",
        "billsec",
        "hangup_cause",
        "bridge_uuid",
        "sip_from_uri",
        "caller_id",
    ]);
    let var_value = prop_oneof![
        scalar(),
        any::<i64>().prop_map(|n| json!(n.to_string())),
        "%[0-9a-fA-F]{0,2}\\PC{0,8}".prop_map(Value::String),
    ];
    (prop::collection::btree_map(var_names, var_value, 0..10), json_value(), any::<bool>()).prop_map(
        |(vars, flow, array)| {
            let vars: Map<String, Value> = vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let profile = json!({ "caller_profile": flow });
            json!({ "variables": vars, "callflow": if array { json!([profile]) } else { profile } })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any JSON value as a record: refused by a named field with its index, or a CDR that
    /// keeps the invariants the database and the search index rely on.
    #[test]
    fn any_record_is_a_valid_cdr_or_refused_by_field(index in 0_usize..1000, value in prop_oneof![record_map(), json_value()]) {
        match parse_record(index, &value, "default") {
            Ok(cdr) => {
                prop_assert!(cdr.duration >= 0 && cdr.billsec >= 0);
                prop_assert!(cdr.end_time.is_none_or(|end| end >= cdr.start_time));
                prop_assert_eq!(cdr.call_successful, cdr.disposition == Disposition::Answered);
                prop_assert!(!cdr.call_id.is_empty() && cdr.call_id.chars().count() <= 255);
                prop_assert!(!cdr.call_id.contains('\0') && !cdr.src_number.contains('\0'));
            }
            Err(e) => {
                prop_assert_eq!(e.index, index);
                prop_assert!(!e.field.is_empty() && !e.reason.is_empty());
            }
        }
    }

    /// Any bytes as a FreeSWITCH post, raw or behind `cdr=`: a JSON object or refused.
    #[test]
    fn any_bytes_are_a_freeswitch_document_or_refused(
        body in prop::collection::vec(any::<u8>(), 0..300),
        prefix in prop::sample::select(vec!["", "cdr=", "cdr=%7B", "cdr={", " cdr=e3"]),
    ) {
        let posted = [prefix.as_bytes(), &body].concat();
        if let Ok(doc) = document(&posted, None) {
            prop_assert!(doc.is_object());
        }
    }

    /// Any document of the module's shape, in each value encoding: a raw record for the
    /// shared validation, which takes it or refuses it by field.
    #[test]
    fn any_freeswitch_document_gives_a_record_or_refusal(
        doc in prop_oneof![3 => freeswitch_doc(), 1 => json_value()],
        encoding in prop::sample::select(vec![ValueEncoding::Detect, ValueEncoding::Encoded, ValueEncoding::Plain]),
        uuid in prop::option::of("\\PC{0,10}"),
    ) {
        if let Ok(raw) = record(&doc, encoding, uuid.as_deref()) {
            prop_assert!(raw["extra"]["variables"].is_object());
            if let Err(e) = parse_record(0, &raw, "freeswitch") {
                prop_assert!(!e.field.is_empty());
            }
        }
    }

    /// The module's three encodings of one document read back as that document.
    #[test]
    fn every_encoding_of_a_document_reads_back(
        uuid in "[a-z0-9-]{1,36}",
        caller in "\\PC{0,12}",
        start_us in 0_i64..4_000_000_000_000_000,
        talk in 0_i64..100_000,
    ) {
        let doc = example(&uuid, &caller, "1002", start_us, talk);
        let raw = doc.to_string();
        let url = percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC).to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
        for body in [raw.clone(), format!("cdr={url}"), format!("cdr={b64}")] {
            prop_assert_eq!(document(body.as_bytes(), None), Ok(doc.clone()));
        }
    }
}
