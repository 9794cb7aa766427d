//! Telling a file's layout: by its header row, or by the shape of its rows when it has none.

use super::GENERIC;
use super::builtin;
use super::layout::{Layout, Resolved};
use std::collections::BTreeMap;

/// Rows looked at to tell a headerless layout.
pub const SAMPLE_ROWS: usize = 5;

/// The generic layout of a header row naming this API's fields (and any others, kept in
/// `extra`).
fn generic(header: &[String]) -> Result<Layout, String> {
    if header.iter().any(|n| n.trim().is_empty()) {
        return Err("the header row has an empty column name".into());
    }
    let fields: BTreeMap<String, String> = header
        .iter()
        .map(|n| n.trim())
        .filter(|n| super::MAPPABLE_FIELDS.contains(n))
        .map(|n| (n.to_string(), n.to_string()))
        .collect();
    Ok(Layout {
        description: "a header row of this API's field names".into(),
        fields,
        identity: super::Identity::CallId,
        ..Layout::default()
    })
}

/// Binds a named layout to a file: its own columns, or the file's header row.
pub fn bind(name: &str, layout: &Layout, first: Option<&Vec<String>>) -> Result<(Resolved, bool), String> {
    if name == GENERIC {
        let header = first.ok_or("a generic CSV needs a header row")?;
        return Ok((generic(header)?.resolve(header)?, true));
    }
    if layout.has_header() {
        let header =
            first.ok_or_else(|| format!("{name} files start with a header row; this one is empty"))?;
        return Ok((layout.resolve(header).map_err(|e| format!("{name}: {e}"))?, true));
    }
    Ok((layout.resolve(&layout.columns)?, false))
}

/// The layout of a file from its first rows: a header row matching a saved or built-in
/// layout (the one that maps the most of its columns), a header of this API's names, or
/// else the headerless layout most sampled rows fit (saved ones first among equals).
pub fn detect(
    sample: &[Vec<String>],
    saved: &[(String, Layout)],
) -> Result<(String, Resolved, bool), String> {
    let Some(first) = sample.first() else {
        return Err("the file has no rows".into());
    };
    let builtins = builtin::all();
    let candidates = saved.iter().map(|(n, l)| (n, l)).chain(builtins.iter().map(|b| (&b.name, &b.layout)));

    let mut best: Option<(usize, &String, Resolved)> = None;
    for (name, layout) in candidates.clone().filter(|(_, l)| l.has_header()) {
        if let Ok(resolved) = layout.resolve(first)
            && best.as_ref().is_none_or(|(n, _, _)| layout.fields.len() > *n)
        {
            best = Some((layout.fields.len(), name, resolved));
        }
    }
    if let Some((_, name, resolved)) = best {
        return Ok((name.clone(), resolved, true));
    }
    // A header row naming this API's own fields reads as the generic layout.
    if first.iter().any(|n| super::MAPPABLE_FIELDS.contains(&n.trim())) {
        return Ok((GENERIC.to_string(), generic(first)?.resolve(first)?, true));
    }
    // The headerless layout most sampled rows fit (the first of equals), if at least half
    // do: one damaged row among the first must not cost the file its layout (the rows that
    // do not fit are refused one by one).
    let mut fitting: Option<(usize, &String, Resolved)> = None;
    for (name, layout) in candidates.filter(|(_, l)| !l.has_header()) {
        let Ok(resolved) = layout.resolve(&layout.columns) else { continue };
        let fit = sample.iter().filter(|row| resolved.fits(row)).count();
        if fit * 2 >= sample.len() && fit > 0 && fitting.as_ref().is_none_or(|(n, _, _)| fit > *n) {
            fitting = Some((fit, name, resolved));
        }
    }
    if let Some((_, name, resolved)) = fitting {
        return Ok((name.clone(), resolved, false));
    }
    let widths: Vec<String> = builtins
        .iter()
        .filter(|b| !b.layout.has_header())
        .map(|b| format!("{} ({})", b.name, b.layout.columns.len()))
        .collect();
    Err(format!(
        "cannot tell the layout of a file whose first row has {} columns: no known header row, and no \
         headerless layout fits its rows; name one with format= (GET /mappings lists them: {}, or a saved \
         mapping)",
        first.len(),
        widths.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(s: &str) -> Vec<String> {
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(s.as_bytes());
        r.records().next().unwrap().unwrap().iter().map(str::to_string).collect()
    }

    fn name_of(rows: &[&str]) -> String {
        let sample: Vec<Vec<String>> = rows.iter().map(|r| row(r)).collect();
        detect(&sample, &[]).map(|(n, _, _)| n).unwrap_or_else(|e| e)
    }

    const TIMES: &str = "\"2026-01-01 00:00:00\",\"2026-01-01 00:00:01\",\"2026-01-01 00:00:05\",5,4";

    #[test]
    fn asterisk_settings_are_told_apart_by_width_and_content() {
        let head = "\"acct\",\"100\",\"200\",\"ctx\",\"\\\"A\\\" <100>\",\"SIP/1\",\"SIP/2\",\"Dial\",\"x\"";
        let tail = "\"ANSWERED\",\"DOCUMENTATION\"";
        let cases = [
            ("", "asterisk-minimal"),
            (",\"1700000000.1\"", "asterisk-nouserfield"),
            (",\"some note\"", "asterisk-nouniqueid"),
            (",\"1700000000.1\",\"\"", "asterisk"),
            (",\"1700000000.1\",\"\",\"\",\"1700000000.1\",\"3\"", "asterisk-extended"),
            (",\"\",\"1700000000.1\",\"3\"", "asterisk-extended-minimal"),
            (",\"pbx-1700000000.1\",\"\",\"1700000000.1\",\"3\"", "asterisk-extended-nouserfield"),
        ];
        for (rest, expected) in cases {
            let line = format!("{head},{TIMES},{tail}{rest}");
            assert_eq!(name_of(&[&line]), expected, "{line}");
        }
    }

    #[test]
    fn cdr_custom_is_told_from_cdr_csv_by_where_the_times_are() {
        let line = format!(
            "\"\\\"A\\\" <100>\",\"100\",\"200\",\"ctx\",\"SIP/1\",\"SIP/2\",\"Dial\",\"x\",{TIMES},\"ANSWERED\",\"DOCUMENTATION\",\"acct\",\"1700000000.1\",\"\",7"
        );
        assert_eq!(name_of(&[&line]), "asterisk-custom");
    }

    #[test]
    fn headers_pick_their_layout() {
        assert_eq!(
            name_of(&[
                "switch,cdr_source_type,callid,caller_id_number,caller_id_name,destination_number,dialcode,state,channel,starting_date,duration,billsec,progresssec,answersec,waitsec,hangup_cause_id,hangup_cause,direction,country_code,accountcode,buy_rate,buy_cost,sell_rate,sell_cost,extradata"
            ]),
            "cdr-stats"
        );
        assert_eq!(
            name_of(&[
                "Account Code,Caller Number,Callee Number,Context,CallerID Number,Source Channel,Dest. Channel,Last app.,Last date,Start Time,Answer Time,End Time,Call Time,Talk Time,Disposition,AMA Flags,Unique ID,Log Userfield,Dest Channel Extension,Caller Name,Answered by,Session,Premier Caller,Action Type,Source Trunk Name,Destination Trunk Name"
            ]),
            "grandstream-ucm"
        );
        assert_eq!(name_of(&["call_id,src_number,dest_number,start_time"]), GENERIC);
        assert!(name_of(&["a,b,c"]).contains("3 columns"));
    }

    #[test]
    fn a_saved_layout_wins_over_builtins() {
        let saved = Layout {
            description: String::new(),
            columns: vec![],
            fields: [("start_time", "Begin"), ("call_id", "Ref")]
                .into_iter()
                .map(|(f, c)| (f.to_string(), c.to_string()))
                .collect(),
            time_formats: vec![],
            timezone: None,
            values: BTreeMap::new(),
            identity: super::super::Identity::Row,
        };
        let sample = vec![row("Ref,Begin,Other")];
        let (name, _, header) = detect(&sample, &[("mine".into(), saved)]).unwrap();
        assert_eq!((name.as_str(), header), ("mine", true));
    }
}
