//! What a Q.850 hangup cause says about how a call ended, for switches that write a cause
//! instead of a disposition (FreeSWITCH, CDR-Stats). Causes come as FreeSWITCH names
//! (`USER_BUSY`) or as Q.850 numbers (`17`).

use super::model::Disposition;

/// The disposition a hangup cause means for a call that was not answered; `None` for a cause
/// this table does not know (the caller then decides). `NORMAL_CLEARING` without an answer
/// is a caller who gave up: no answer.
pub fn disposition_of_cause(cause: &str) -> Option<Disposition> {
    let cause = cause.trim();
    let named = match cause.parse::<u16>() {
        Ok(code) => name_of_code(code)?,
        Err(_) => cause,
    };
    Some(match named.to_ascii_uppercase().as_str() {
        "USER_BUSY" => Disposition::Busy,
        "NORMAL_CLEARING" | "NO_ANSWER" | "NO_USER_RESPONSE" | "ORIGINATOR_CANCEL" | "SUBSCRIBER_ABSENT"
        | "LOSE_RACE" | "PICKED_OFF" | "ALLOTTED_TIMEOUT" => Disposition::NoAnswer,
        "NORMAL_CIRCUIT_CONGESTION" | "SWITCH_CONGESTION" | "NORMAL_TEMPORARY_FAILURE" => {
            Disposition::Congestion
        }
        _ => Disposition::Failed,
    })
}

/// The FreeSWITCH name of the Q.850 causes that decide a disposition.
fn name_of_code(code: u16) -> Option<&'static str> {
    Some(match code {
        16 => "NORMAL_CLEARING",
        17 => "USER_BUSY",
        18 => "NO_USER_RESPONSE",
        19 => "NO_ANSWER",
        20 => "SUBSCRIBER_ABSENT",
        34 => "NORMAL_CIRCUIT_CONGESTION",
        41 => "NORMAL_TEMPORARY_FAILURE",
        42 => "SWITCH_CONGESTION",
        487 => "ORIGINATOR_CANCEL",
        501 => "LOSE_RACE",
        502 => "PICKED_OFF",
        602 => "ALLOTTED_TIMEOUT",
        1..=127 => "FAILED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_by_name_and_number() {
        assert_eq!(disposition_of_cause("USER_BUSY"), Some(Disposition::Busy));
        assert_eq!(disposition_of_cause("17"), Some(Disposition::Busy));
        assert_eq!(disposition_of_cause("NO_USER_RESPONSE"), Some(Disposition::NoAnswer));
        assert_eq!(disposition_of_cause("16"), Some(Disposition::NoAnswer));
        assert_eq!(disposition_of_cause("ORIGINATOR_CANCEL"), Some(Disposition::NoAnswer));
        assert_eq!(disposition_of_cause("SWITCH_CONGESTION"), Some(Disposition::Congestion));
        assert_eq!(disposition_of_cause("CALL_REJECTED"), Some(Disposition::Failed));
        assert_eq!(disposition_of_cause("21"), Some(Disposition::Failed));
        assert_eq!(disposition_of_cause("9999"), None);
    }
}
