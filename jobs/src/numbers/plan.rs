//! A source's dialling rules: how its switch writes numbers that are not international.

use phonenumber::country;
use poem_openapi::Object;
use serde::{Deserialize, Serialize};

/// How one source writes numbers, as an operator states it (`PUT /dialling-plans/{source}`).
/// A source without a plan of its own uses the plan of source `*`, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Object)]
pub struct DiallingPlanSpec {
    /// ISO 3166-1 alpha-2 country the switch sits in: national numbers are read as this
    /// country's, with its own trunk (`0`, `1`, …) and international (`00`, `011`, …)
    /// prefixes. Without it, only international numbers resolve.
    #[oai(skip_serializing_if_is_none)]
    pub home_country: Option<String>,
    /// International prefixes this switch uses besides the home country's own (or without a
    /// home country), e.g. `["00"]`.
    #[oai(default)]
    #[serde(default)]
    pub international_prefixes: Vec<String>,
    /// A trunk prefix other than the home country's, e.g. `0` on a switch that adds one.
    #[oai(skip_serializing_if_is_none)]
    pub national_prefix: Option<String>,
    /// Tech, routing or carrier-select prefixes removed before anything else, e.g. `9`
    /// (outside line) or `1010288`; the longest that matches is removed.
    #[oai(default)]
    #[serde(default)]
    pub strip_prefixes: Vec<String>,
    /// Digit strings without any prefix are E.164 without the `+` (trunks that write
    /// `441632960983`). Without a home country only.
    #[oai(default)]
    #[serde(default)]
    pub digits_are_e164: bool,
}

/// A plan ready to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiallingPlan {
    pub(super) home: Option<country::Id>,
    pub(super) international_prefixes: Vec<String>,
    pub(super) national_prefix: Option<String>,
    /// Longest first.
    pub(super) strip_prefixes: Vec<String>,
    pub(super) digits_are_e164: bool,
}

/// A plan that cannot be applied, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PlanError {
    pub field: &'static str,
    pub reason: String,
}

fn digits(field: &'static str, value: &str) -> Result<String, PlanError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PlanError { field, reason: format!("{value:?} is not 1 to 16 digits") });
    }
    Ok(v.to_string())
}

impl DiallingPlanSpec {
    /// Checks every field; the error names the first one at fault.
    pub fn plan(&self) -> Result<DiallingPlan, PlanError> {
        let home = match &self.home_country {
            Some(c) => {
                let code = c.trim().to_ascii_uppercase();
                let id = code
                    .parse::<country::Id>()
                    .ok()
                    .filter(|id| phonenumber::metadata::DATABASE.by_id(id.as_ref()).is_some());
                Some(id.ok_or_else(|| PlanError {
                    field: "home_country",
                    reason: format!("{c:?} is not an ISO 3166-1 alpha-2 code libphonenumber knows"),
                })?)
            }
            None => None,
        };
        let international_prefixes = self
            .international_prefixes
            .iter()
            .map(|p| digits("international_prefixes", p))
            .collect::<Result<_, _>>()?;
        let national_prefix =
            self.national_prefix.as_deref().map(|p| digits("national_prefix", p)).transpose()?;
        let mut strip_prefixes: Vec<String> =
            self.strip_prefixes.iter().map(|p| digits("strip_prefixes", p)).collect::<Result<_, _>>()?;
        strip_prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        if self.digits_are_e164 && home.is_some() {
            return Err(PlanError {
                field: "digits_are_e164",
                reason: "a source with a home country writes national numbers; drop one of the two".into(),
            });
        }
        Ok(DiallingPlan {
            home,
            international_prefixes,
            national_prefix,
            strip_prefixes,
            digits_are_e164: self.digits_are_e164,
        })
    }
}
