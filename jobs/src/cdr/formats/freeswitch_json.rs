//! FreeSWITCH `mod_json_cdr` posts: one channel's CDR per request, as the module sends it.
//!
//! The module posts the JSON raw (`encode` off, the default), as `cdr=<url-encoded JSON>`
//! (`encode=true`) or as `cdr=<base64>` (`encode=base64`); with `disable-100-continue` the
//! Content-Type it sends is not the body's, so the body is read by what it holds. With
//! `encode-values` (on by default) every value of `variables` is URL-encoded. Versions before
//! 1.6 write `callflow` as an object (repeated after a transfer), later ones as an array,
//! newest profile first. Times are read from the `*_uepoch` variables: microseconds since the
//! epoch, UTC, exact.

use super::decode::{Charset, decode_field};
use base64::Engine as _;
use percent_encoding::percent_decode;
use serde_json::{Map, Value, json};

/// How the values of `variables` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueEncoding {
    /// Told from the document: URL-encoded when no value holds a character the module
    /// would have escaped and some value holds an escape.
    #[default]
    Detect,
    Encoded,
    Plain,
}

/// Characters `switch_url_encode` escapes (besides controls, non-ASCII and `%`): a value
/// holding one raw was not URL-encoded.
const ESCAPED_BY_FREESWITCH: &[u8] = b"\r\n #&+:;<=>?@[\\]^`{|}\"";

/// The JSON document of a post, whichever way the module encoded it.
pub fn document(body: &[u8], charset: Option<Charset>) -> Result<Value, String> {
    let body = body.trim_ascii();
    let json_bytes: Vec<u8> = match body.strip_prefix(b"cdr=") {
        Some(payload) => {
            let payload = payload.split(|b| *b == b'&').next().unwrap_or_default();
            if payload.starts_with(b"{") || payload.starts_with(b"%7B") || payload.starts_with(b"%7b") {
                percent_decode(payload).collect()
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .map_err(|e| format!("cdr= is neither URL-encoded JSON nor base64: {e}"))?
            }
        }
        None => body.to_vec(),
    };
    let text = decode_field(&json_bytes, charset);
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    if !value.is_object() {
        return Err("expected a mod_json_cdr document (an object with variables and callflow)".into());
    }
    Ok(value)
}

/// The raw record of a mod_json_cdr document, in this API's field names, for the shared
/// validation. `uuid` is the `?uuid=` the module appends to its URL, used when the document
/// names none.
pub fn record(doc: &Value, encoding: ValueEncoding, uuid: Option<&str>) -> Result<Value, String> {
    let raw_vars = doc["variables"].as_object().ok_or("the document has no variables object")?;
    let encoded = match encoding {
        ValueEncoding::Encoded => true,
        ValueEncoding::Plain => false,
        ValueEncoding::Detect => looks_encoded(raw_vars),
    };
    let vars: Map<String, Value> = raw_vars
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) if encoded => {
                    Value::String(percent_decode(s.as_bytes()).decode_utf8_lossy().into_owned())
                }
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    let var = |name: &str| match vars.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let profile = newest_profile(doc);
    let from_profile = |name: &str| profile.and_then(|p| p[name].as_str()).map(str::to_string);
    let linked = [
        profile.and_then(|p| p["originator"]["originator_caller_profiles"][0]["uuid"].as_str()),
        profile.and_then(|p| p["originatee"]["originatee_caller_profiles"][0]["uuid"].as_str()),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .next()
    .or_else(|| var("bridge_uuid"))
    .or_else(|| var("signal_bond"));

    let mut rec = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            rec.insert(k.to_string(), Value::String(v));
        }
    };
    put("call_id", var("uuid").or_else(|| from_profile("uuid")).or_else(|| uuid.map(str::to_string)));
    put(
        "src_number",
        Some(from_profile("caller_id_number").or_else(|| var("caller_id_number")).unwrap_or_default()),
    );
    put(
        "dest_number",
        Some(from_profile("destination_number").or_else(|| var("destination_number")).unwrap_or_default()),
    );
    put("start_time", time(&var("start_uepoch"), &var("start_epoch"), &var("start_stamp")));
    put("answer_time", time(&var("answer_uepoch"), &var("answer_epoch"), &var("answer_stamp")));
    put("end_time", time(&var("end_uepoch"), &var("end_epoch"), &var("end_stamp")));
    put("duration", var("duration"));
    put("billsec", var("billsec"));
    put("hangup_cause", var("hangup_cause"));
    put("direction", var("direction"));
    put("account_code", var("accountcode"));
    put("linked_id", linked);
    let mut extra = Map::new();
    extra.insert("variables".into(), Value::Object(vars));
    for key in ["core-uuid", "switchname"] {
        if let Some(v) = doc.get(key) {
            extra.insert(key.into(), v.clone());
        }
    }
    rec.insert("extra".into(), Value::Object(extra));
    Ok(Value::Object(rec))
}

/// The caller profile of the channel's latest state: the first of `callflow` when it is an
/// array, the object itself in older versions.
fn newest_profile(doc: &Value) -> Option<&Value> {
    let flow = match &doc["callflow"] {
        Value::Array(items) => items.first()?,
        other => other,
    };
    Some(&flow["caller_profile"]).filter(|p| p.is_object())
}

/// A time as UTC RFC 3339 from microseconds, else seconds, since the epoch (`0` means the
/// event did not happen); else the local stamp as written.
fn time(uepoch: &Option<String>, epoch: &Option<String>, stamp: &Option<String>) -> Option<String> {
    let micros = uepoch.as_deref().and_then(|u| u.trim().parse::<i64>().ok());
    let seconds = epoch.as_deref().and_then(|e| e.trim().parse::<i64>().ok());
    match (micros, seconds) {
        (Some(0), _) | (None, Some(0)) => None,
        (Some(us), _) => chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339()),
        (None, Some(s)) => chrono::DateTime::from_timestamp(s, 0).map(|t| t.to_rfc3339()),
        (None, None) => stamp.clone(),
    }
}

fn looks_encoded(vars: &Map<String, Value>) -> bool {
    let values = || vars.values().filter_map(Value::as_str);
    let raw_special = values().any(|s| s.bytes().any(|b| ESCAPED_BY_FREESWITCH.contains(&b)));
    let escapes = values().any(|s| {
        s.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
    });
    escapes && !raw_special
}

/// A minimal document of the module's shape, for tests and the load generator.
pub fn example(uuid: &str, caller: &str, callee: &str, start_us: i64, talk_seconds: i64) -> Value {
    let answer = start_us + 2_000_000;
    let end = answer + talk_seconds * 1_000_000;
    json!({
        "core-uuid": "1b6bd8ba-7bd1-11e5-a230-5c514f6a0f72",
        "switchname": "fs-load",
        "channel_data": { "state": "CS_REPORTING", "direction": "inbound" },
        "variables": {
            "direction": "inbound",
            "uuid": uuid,
            "sip_from_uri": format!("{caller}%40192.0.2.10"),
            "start_uepoch": start_us.to_string(),
            "answer_uepoch": answer.to_string(),
            "end_uepoch": end.to_string(),
            "duration": (talk_seconds + 2).to_string(),
            "billsec": talk_seconds.to_string(),
            "hangup_cause": "NORMAL_CLEARING",
            "hangup_cause_q850": "16",
            "accountcode": "load"
        },
        "callflow": [{
            "caller_profile": { "uuid": uuid, "caller_id_number": caller, "destination_number": callee },
            "times": { "created_time": start_us.to_string() }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(vars: Value, callflow: Value) -> Value {
        json!({ "variables": vars, "callflow": callflow })
    }

    #[test]
    fn every_encode_mode_reads_the_same_document() {
        let d = example("u-1", "1001", "1002", 1_700_000_000_000_000, 30);
        let raw = d.to_string();
        let url: String =
            percent_encoding::utf8_percent_encode(&raw, percent_encoding::NON_ALPHANUMERIC).to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
        for body in [raw.clone(), format!("cdr={url}"), format!("cdr={b64}"), format!("  {raw}\n")] {
            assert_eq!(document(body.as_bytes(), None).unwrap(), d, "{}", &body[..20]);
        }
        assert!(document(b"cdr=%%%", None).is_err());
        assert!(document(b"[1]", None).is_err());
    }

    #[test]
    fn fields_come_from_variables_and_the_newest_caller_profile() {
        let d = example("u-1", "1001", "1002", 1_700_000_000_123_456, 30);
        let r = record(&d, ValueEncoding::Detect, None).unwrap();
        assert_eq!(r["call_id"], "u-1");
        assert_eq!((r["src_number"].as_str(), r["dest_number"].as_str()), (Some("1001"), Some("1002")));
        assert_eq!(r["start_time"], "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(r["billsec"], "30");
        // encode-values on (the module's default): every value URL-encoded, kept decoded.
        assert_eq!(r["extra"]["variables"]["sip_from_uri"], "1001@192.0.2.10");
        // A raw '@' elsewhere shows the values are not encoded: an escape is then left alone.
        let mut plain = d.clone();
        plain["variables"]["sip_to_uri"] = json!("1002@192.0.2.10");
        let r = record(&plain, ValueEncoding::Detect, None).unwrap();
        assert_eq!(r["extra"]["variables"]["sip_from_uri"], "1001%40192.0.2.10");
    }

    #[test]
    fn encoded_values_are_decoded_and_old_callflow_objects_read() {
        let d = doc(
            json!({"uuid": "u-2", "caller_id": "Extension%201001", "start_uepoch": "1368707608000000",
                   "answer_uepoch": "0", "end_uepoch": "1368707632000000", "bridge_uuid": "b-2"}),
            json!({"caller_profile": {"caller_id_number": "1001", "destination_number": "s"}}),
        );
        let r = record(&d, ValueEncoding::Detect, None).unwrap();
        assert_eq!(r["extra"]["variables"]["caller_id"], "Extension 1001");
        assert_eq!(r["dest_number"], "s");
        assert!(r.get("answer_time").is_none());
        assert_eq!(r["linked_id"], "b-2");
        let plain = record(&d, ValueEncoding::Plain, Some("q")).unwrap();
        assert_eq!(plain["extra"]["variables"]["caller_id"], "Extension%201001");
    }

    #[test]
    fn the_url_uuid_names_a_document_without_one() {
        let d = doc(json!({"start_epoch": "1368707608"}), json!([]));
        let r = record(&d, ValueEncoding::Detect, Some("from-url")).unwrap();
        assert_eq!(r["call_id"], "from-url");
        assert_eq!(r["start_time"], "2013-05-16T12:33:28+00:00");
        assert!(record(&json!({"callflow": []}), ValueEncoding::Detect, None).is_err());
    }
}
