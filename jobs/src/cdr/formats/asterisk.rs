//! Asterisk `cdr_csv` (Master.csv): no header, every non-empty field quoted.
//!
//! accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
//! answer, end, duration, billsec, disposition, amaflags, uniqueid, userfield — and in the
//! extended layout peeraccount, linkedid, sequence.

use super::{caller, expect_columns, local_time, object, text};
use chrono_tz::Tz;
use serde_json::{Map, Value};

const EXTRA_COLUMNS: [(usize, &str); 8] = [
    (3, "dcontext"),
    (4, "clid"),
    (5, "channel"),
    (6, "dstchannel"),
    (7, "lastapp"),
    (8, "lastdata"),
    (15, "amaflags"),
    (17, "userfield"),
];

pub fn record(f: &[String], extended: bool, tz: Tz) -> Result<Value, String> {
    expect_columns(
        f,
        if extended { 21 } else { 18 },
        if extended { "asterisk-extended" } else { "asterisk" },
    )?;
    let mut extra = Map::new();
    for (i, name) in EXTRA_COLUMNS {
        if let Some(v) = text(&f[i]) {
            extra.insert(name.into(), v);
        }
    }
    if extended {
        for (i, name) in [(18, "peeraccount"), (19, "linkedid"), (20, "sequence")] {
            if let Some(v) = text(&f[i]) {
                extra.insert(name.into(), v);
            }
        }
    }
    Ok(object(
        [
            ("account_code", text(&f[0])),
            ("src_number", caller(&f[1])),
            ("dest_number", text(&f[2])),
            ("start_time", local_time(&f[9], "start", tz)?),
            ("answer_time", local_time(&f[10], "answer", tz)?),
            ("end_time", local_time(&f[11], "end", tz)?),
            ("duration", text(&f[12])),
            ("billsec", text(&f[13])),
            ("disposition", text(&f[14])),
            ("call_id", text(&f[16])),
        ],
        extra,
    ))
}
