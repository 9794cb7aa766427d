//! CDRs as rows of PostgreSQL's `COPY … FROM STDIN` text format.
//!
//! COPY is the cheapest way into PostgreSQL: the server parses plain text lines instead of
//! a bound parameter per value. The format is tab-separated columns, one line per row,
//! `\N` for NULL, and backslash escapes for the four characters that would break a line.

use crate::cdr::Cdr;
use crate::rating::{Derived, Rating};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;

/// The staging columns, in the order [`encode`] writes them.
pub const COLUMNS: &str = "source, call_id, record_key, src_number, dest_number, start_time, answer_time, \
     end_time, duration, billsec, disposition, disposition_raw, call_successful, hangup_cause, direction, \
     account_code, linked_id, caller_withheld, extra, src_e164, dest_e164, dest_country, dest_type, \
     sell_rating, sell_cost, sell_currency, sell_prefix, sell_deck, buy_rating, buy_cost, buy_currency, buy_prefix, buy_deck";

/// The columns of `cdrs` ingest derives (the tail of [`COLUMNS`]).
pub const DERIVED_COLUMNS: &str = "src_e164, dest_e164, dest_country, dest_type, \
     sell_rating, sell_cost, sell_currency, sell_prefix, sell_deck, buy_rating, buy_cost, buy_currency, buy_prefix, buy_deck";

/// Appends one line per CDR to `out`, with what was derived from it (`derived[i]` of
/// `cdrs[i]`).
pub fn encode(cdrs: &[Cdr], derived: &[Derived], out: &mut String) {
    for (cdr, d) in cdrs.iter().zip(derived) {
        text(out, &cdr.source);
        tab(out);
        text(out, &cdr.call_id);
        tab(out);
        text(out, &cdr.record_key);
        tab(out);
        text(out, &cdr.src_number);
        tab(out);
        text(out, &cdr.dest_number);
        tab(out);
        time(out, Some(cdr.start_time));
        tab(out);
        time(out, cdr.answer_time);
        tab(out);
        time(out, cdr.end_time);
        tab(out);
        let _ = write!(out, "{}\t{}\t", cdr.duration, cdr.billsec);
        text(out, cdr.disposition.as_str());
        tab(out);
        optional_text(out, cdr.disposition_raw.as_deref());
        tab(out);
        out.push(if cdr.call_successful { 't' } else { 'f' });
        tab(out);
        optional_text(out, cdr.hangup_cause.as_deref());
        tab(out);
        optional_text(out, cdr.direction.as_deref());
        tab(out);
        optional_text(out, cdr.account_code.as_deref());
        tab(out);
        optional_text(out, cdr.linked_id.as_deref());
        tab(out);
        out.push(if cdr.caller_withheld { 't' } else { 'f' });
        tab(out);
        // A map of JSON values always serialises; the fallback keeps the row well-formed.
        let extra = serde_json::to_string(&cdr.extra).unwrap_or_else(|_| "{}".to_string());
        text(out, &extra);
        tab(out);
        optional_text(out, d.src.e164.as_deref());
        tab(out);
        optional_text(out, d.dest.e164.as_deref());
        tab(out);
        optional_text(out, d.dest.country.as_deref());
        tab(out);
        text(out, d.dest.kind);
        rating(out, &d.sell);
        rating(out, &d.buy);
        out.push('\n');
    }
}

/// Status, cost, currency, prefix and deck of one side, each after a tab.
fn rating(out: &mut String, r: &Rating) {
    tab(out);
    text(out, r.status.as_str());
    tab(out);
    optional_number(out, r.cost);
    tab(out);
    optional_text(out, r.currency.as_deref());
    tab(out);
    optional_text(out, r.prefix.as_deref());
    tab(out);
    optional_number(out, r.deck);
}

/// A number (digits, sign and point only: nothing to escape), or NULL.
fn optional_number(out: &mut String, value: Option<impl std::fmt::Display>) {
    match value {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("\\N"),
    }
}

fn tab(out: &mut String) {
    out.push('\t');
}

/// `value` escaped for COPY's text format. The bytes to escape are ASCII, so the runs
/// between them are copied whole: most values (and the record as written, the longest)
/// have none.
fn text(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(i) = rest.bytes().position(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t')) {
        let (run, tail) = rest.split_at(i);
        out.push_str(run);
        let (special, tail) = tail.split_at(1);
        out.push_str(match special {
            "\\" => "\\\\",
            "\n" => "\\n",
            "\r" => "\\r",
            _ => "\\t",
        });
        rest = tail;
    }
    out.push_str(rest);
}

fn optional_text(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => text(out, v),
        None => out.push_str("\\N"),
    }
}

/// Microseconds, truncated: PostgreSQL's precision, and what the driver would send.
fn time(out: &mut String, value: Option<DateTime<Utc>>) {
    match value {
        Some(t) => out.push_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => out.push_str("\\N"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::Disposition;

    fn cdr() -> Cdr {
        let start = DateTime::parse_from_rfc3339("2026-11-27T04:46:52.929609894Z").unwrap().to_utc();
        Cdr {
            call_id: "a\tb".into(),
            record_key: "seq:1".into(),
            source: "pbx\\1".into(),
            src_number: "+4420".into(),
            dest_number: "*99#".into(),
            start_time: start,
            answer_time: None,
            end_time: Some(start + chrono::Duration::seconds(5)),
            duration: 5,
            billsec: 0,
            disposition: Disposition::NoAnswer,
            disposition_raw: Some("NO ANSWER".into()),
            call_successful: false,
            hangup_cause: Some("line\nbreak\r".into()),
            direction: None,
            account_code: None,
            linked_id: None,
            caller_withheld: false,
            extra: serde_json::from_str(r#"{"note":"quote \" and \\ slash"}"#).unwrap(),
        }
    }

    #[test]
    fn a_row_escapes_what_would_break_the_line_and_marks_nulls() {
        let mut out = String::new();
        let derived = crate::rating::Catalogue::default().derive(&cdr());
        encode(&[cdr()], &[derived], &mut out);
        assert_eq!(
            out,
            "pbx\\\\1\ta\\tb\tseq:1\t+4420\t*99#\t2026-11-27T04:46:52.929609Z\t\\N\t2026-11-27T04:46:57.929609Z\t\
             5\t0\tNO ANSWER\tNO ANSWER\tf\tline\\nbreak\\r\t\\N\t\\N\t\\N\tf\t{\"note\":\"quote \\\\\" and \\\\\\\\ slash\"}\t\
             \\N\t\\N\t\\N\textension\tno_deck\t\\N\t\\N\t\\N\t\\N\tno_deck\t\\N\t\\N\t\\N\t\\N\n"
        );
        assert_eq!(out.matches('\t').count(), COLUMNS.split(',').count() - 1);
    }

    #[test]
    fn text_keeps_every_character_and_escapes_only_what_copy_reads() {
        let mut out = String::new();
        text(&mut out, "Zoë\tab\tend\r\n日本\\x");
        assert_eq!(out, "Zoë\\tab\\tend\\r\\n日本\\\\x");
        let mut plain = String::new();
        text(&mut plain, "日本 ümlaut, no escapes");
        assert_eq!(plain, "日本 ümlaut, no escapes");
        let mut edges = String::new();
        text(&mut edges, "\t\t");
        assert_eq!(edges, "\\t\\t");
    }
}
