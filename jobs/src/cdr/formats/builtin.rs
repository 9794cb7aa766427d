//! The layouts this system knows without being told: what stock configurations of common
//! switches and CDR tools write.

use super::layout::{Identity, Layout};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A built-in layout with its name.
pub struct Builtin {
    pub name: String,
    pub layout: Layout,
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(f, c)| (f.to_string(), c.to_string())).collect()
}

fn names(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| c.to_string()).collect()
}

/// A built-in layout: no time formats or zone of its own (the standard ones, the request's).
fn builtin(
    name: impl Into<String>,
    description: impl Into<String>,
    columns: Vec<String>,
    mapped: &[(&str, &str)],
    identity: Identity,
) -> Builtin {
    Builtin {
        name: name.into(),
        layout: Layout {
            description: description.into(),
            columns,
            fields: fields(mapped),
            identity,
            ..Layout::default()
        },
    }
}

/// Asterisk `cdr_csv` (Master.csv) columns: sixteen always, then `uniqueid` with
/// `loguniqueid`, `userfield` with `loguserfield`, and `peeraccount`, `linkedid`, `sequence`
/// with `newcdrcolumns`.
fn asterisk(uniqueid: bool, userfield: bool, newcdrcolumns: bool) -> Builtin {
    let mut columns = names(&[
        "accountcode",
        "src",
        "dst",
        "dcontext",
        "clid",
        "channel",
        "dstchannel",
        "lastapp",
        "lastdata",
        "start",
        "answer",
        "end",
        "duration",
        "billsec",
        "disposition",
        "amaflags",
    ]);
    let mut mapped = vec![
        ("account_code", "accountcode"),
        ("src_number", "src"),
        ("dest_number", "dst"),
        ("start_time", "start"),
        ("answer_time", "answer"),
        ("end_time", "end"),
        ("duration", "duration"),
        ("billsec", "billsec"),
        ("disposition", "disposition"),
    ];
    if uniqueid {
        columns.push("uniqueid".into());
        mapped.push(("call_id", "uniqueid"));
    }
    if userfield {
        columns.push("userfield".into());
    }
    if newcdrcolumns {
        columns.extend(names(&["peeraccount", "linkedid", "sequence"]));
        mapped.extend([("linked_id", "linkedid"), ("sequence", "sequence")]);
    }
    let base = if newcdrcolumns { "asterisk-extended" } else { "asterisk" };
    let name = match (uniqueid, userfield) {
        (true, true) => base.to_string(),
        (true, false) => format!("{base}-nouserfield"),
        (false, true) => format!("{base}-nouniqueid"),
        (false, false) => format!("{base}-minimal"),
    };
    let description = format!(
        "Asterisk cdr_csv Master.csv, {} columns (loguniqueid={}, loguserfield={}, newcdrcolumns={})",
        columns.len(),
        yes(uniqueid),
        yes(userfield),
        yes(newcdrcolumns)
    );
    builtin(name, description, columns, &mapped, Identity::Row)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Asterisk `cdr_custom` with the `Master.csv` mapping of the stock
/// `cdr_custom.conf.sample`: `clid` first, `accountcode` after `amaflags`, an unquoted
/// `sequence` last.
fn asterisk_custom() -> Builtin {
    builtin(
        "asterisk-custom",
        "Asterisk cdr_custom, the Master.csv mapping of the stock cdr_custom.conf.sample",
        names(&[
            "clid",
            "src",
            "dst",
            "dcontext",
            "channel",
            "dstchannel",
            "lastapp",
            "lastdata",
            "start",
            "answer",
            "end",
            "duration",
            "billsec",
            "disposition",
            "amaflags",
            "accountcode",
            "uniqueid",
            "userfield",
            "sequence",
        ]),
        &[
            ("src_number", "src"),
            ("dest_number", "dst"),
            ("start_time", "start"),
            ("answer_time", "answer"),
            ("end_time", "end"),
            ("duration", "duration"),
            ("billsec", "billsec"),
            ("disposition", "disposition"),
            ("account_code", "accountcode"),
            ("call_id", "uniqueid"),
            ("sequence", "sequence"),
        ],
        Identity::Row,
    )
}

/// FreeSWITCH `mod_cdr_csv` with its default template. Each leg has its own `uuid`; the
/// other leg's is in `bleg_uuid`. There is no disposition: it follows from the answer, the
/// billable seconds and the hangup cause.
fn freeswitch() -> Builtin {
    builtin(
        "freeswitch",
        "FreeSWITCH mod_cdr_csv, default template",
        names(&[
            "caller_id_name",
            "caller_id_number",
            "destination_number",
            "context",
            "start_stamp",
            "answer_stamp",
            "end_stamp",
            "duration",
            "billsec",
            "hangup_cause",
            "uuid",
            "bleg_uuid",
            "accountcode",
            "read_codec",
            "write_codec",
        ]),
        &[
            ("src_number", "caller_id_number"),
            ("dest_number", "destination_number"),
            ("start_time", "start_stamp"),
            ("answer_time", "answer_stamp"),
            ("end_time", "end_stamp"),
            ("duration", "duration"),
            ("billsec", "billsec"),
            ("hangup_cause", "hangup_cause"),
            ("call_id", "uuid"),
            ("linked_id", "bleg_uuid"),
            ("account_code", "accountcode"),
        ],
        Identity::CallId,
    )
}

/// CDR-Stats' CSV import file: a header row, the start and the seconds but no answer or end
/// time, the hangup cause as a Q.850 number, the direction as a number.
fn cdr_stats() -> Builtin {
    let mut b = builtin(
        "cdr-stats",
        "CDR-Stats CSV import (header row switch,cdr_source_type,callid,...)",
        vec![],
        &[
            ("call_id", "callid"),
            ("src_number", "caller_id_number"),
            ("dest_number", "destination_number"),
            ("start_time", "starting_date"),
            ("duration", "duration"),
            ("billsec", "billsec"),
            ("hangup_cause", "hangup_cause_id"),
            ("direction", "direction"),
            ("account_code", "accountcode"),
        ],
        Identity::CallId,
    );
    b.layout.values.insert("direction".into(), fields(&[("1", "inbound"), ("2", "outbound")]));
    b
}

/// Grandstream UCM's CDR export: a header row, one row per leg; the legs of a call share
/// `Session` and `Unique ID` and differ in callee and times.
fn grandstream_ucm() -> Builtin {
    builtin(
        "grandstream-ucm",
        "Grandstream UCM CDR export (header row Account Code,Caller Number,...)",
        vec![],
        &[
            ("account_code", "Account Code"),
            ("src_number", "Caller Number"),
            ("dest_number", "Callee Number"),
            ("start_time", "Start Time"),
            ("answer_time", "Answer Time"),
            ("end_time", "End Time"),
            ("duration", "Call Time"),
            ("billsec", "Talk Time"),
            ("disposition", "Disposition"),
            ("call_id", "Unique ID"),
            ("linked_id", "Session"),
        ],
        Identity::Row,
    )
}

/// Every built-in layout, in the order headerless detection prefers them; built once.
pub fn all() -> &'static [Builtin] {
    static ALL: LazyLock<Vec<Builtin>> = LazyLock::new(|| {
        let mut out = Vec::new();
        for newcdrcolumns in [false, true] {
            for (uniqueid, userfield) in [(true, true), (true, false), (false, true), (false, false)] {
                out.push(asterisk(uniqueid, userfield, newcdrcolumns));
            }
        }
        out.extend([asterisk_custom(), freeswitch(), cdr_stats(), grandstream_ucm()]);
        out
    });
    &ALL
}

/// The built-in layout of that name.
pub fn find(name: &str) -> Option<Layout> {
    all().iter().find(|b| b.name == name).map(|b| b.layout.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_a_valid_layout_with_a_unique_name() {
        let all = all();
        for b in all {
            b.layout.validate().unwrap_or_else(|e| panic!("{}: {e}", b.name));
        }
        let mut names: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn asterisk_column_counts_follow_its_settings() {
        let count = |name: &str| find(name).map(|l| l.columns.len());
        assert_eq!(count("asterisk"), Some(18));
        assert_eq!(count("asterisk-nouserfield"), Some(17));
        assert_eq!(count("asterisk-nouniqueid"), Some(17));
        assert_eq!(count("asterisk-minimal"), Some(16));
        assert_eq!(count("asterisk-extended"), Some(21));
        assert_eq!(count("asterisk-extended-minimal"), Some(19));
        assert_eq!(count("asterisk-custom"), Some(19));
        assert_eq!(count("freeswitch"), Some(15));
    }
}
