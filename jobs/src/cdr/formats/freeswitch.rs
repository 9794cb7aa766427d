//! FreeSWITCH `mod_cdr_csv`, default template:
//! caller_id_name, caller_id_number, destination_number, context, start_stamp,
//! answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid, bleg_uuid, accountcode,
//! read_codec, write_codec.

use super::{caller, expect_columns, local_time, object, text};
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// The disposition a Q.850 hangup cause means; the raw cause is kept too.
fn disposition(cause: &str, billsec: i64) -> &'static str {
    match cause {
        "NORMAL_CLEARING" if billsec > 0 => "ANSWERED",
        "NORMAL_CLEARING" => "NO ANSWER",
        "USER_BUSY" => "BUSY",
        "NO_ANSWER" | "NO_USER_RESPONSE" => "NO ANSWER",
        _ => "FAILED",
    }
}

pub fn record(f: &[String], tz: Tz) -> Result<Value, String> {
    expect_columns(f, 15, "freeswitch")?;
    let billsec = f[8].trim().parse::<i64>().unwrap_or(0);
    let cause = f[9].trim();
    let mut extra = Map::new();
    for (i, name) in
        [(0, "caller_id_name"), (3, "context"), (11, "bleg_uuid"), (13, "read_codec"), (14, "write_codec")]
    {
        if let Some(v) = text(&f[i]) {
            extra.insert(name.into(), v);
        }
    }
    Ok(object(
        [
            ("src_number", caller(&f[1])),
            ("dest_number", text(&f[2])),
            ("start_time", local_time(&f[4], "start_stamp", tz)?),
            ("answer_time", local_time(&f[5], "answer_stamp", tz)?),
            ("end_time", local_time(&f[6], "end_stamp", tz)?),
            ("duration", text(&f[7])),
            ("billsec", text(&f[8])),
            ("hangup_cause", text(cause)),
            ("disposition", Some(Value::String(disposition(cause, billsec).into()))),
            ("call_id", text(&f[10])),
            ("account_code", text(&f[12])),
        ],
        extra,
    ))
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn hangup_causes_map_to_dispositions() {
        assert_eq!(disposition("NORMAL_CLEARING", 12), "ANSWERED");
        assert_eq!(disposition("NORMAL_CLEARING", 0), "NO ANSWER");
        assert_eq!(disposition("USER_BUSY", 0), "BUSY");
        assert_eq!(disposition("NO_USER_RESPONSE", 0), "NO ANSWER");
        assert_eq!(disposition("ORIGINATOR_CANCEL", 0), "FAILED");
    }
}
