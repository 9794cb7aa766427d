//! Built-in rules for the fraud patterns operators watch for first: a client fills in its
//! own values and saves one as a rule.

use super::{Condition, Metric, RuleSpec};
use poem_openapi::Object;
use serde::Serialize;
use std::collections::BTreeMap;

/// A rule to start from.
#[derive(Debug, Clone, PartialEq, Serialize, Object)]
pub struct Template {
    pub id: String,
    pub description: String,
    /// The rule, with example filters to replace.
    pub rule: RuleSpec,
}

fn spec(
    name: &str,
    filters: &[(&str, &str)],
    metric: Metric,
    condition: Condition,
    threshold: f64,
    window: u32,
    min: u64,
) -> RuleSpec {
    RuleSpec {
        name: name.to_string(),
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
        metric,
        condition,
        threshold,
        window_minutes: window,
        min_attempts: min,
        webhook_url: None,
        webhook_secret: None,
        enabled: true,
    }
}

/// Every built-in template; each is a valid rule as it stands.
pub fn all() -> Vec<Template> {
    vec![
        Template {
            id: "premium_destinations".into(),
            description: "Any call to premium-rate numbers or to chosen countries or prefixes (toll fraud, \
                          International Revenue Share Fraud). Replace the filters: dest_type=premium_rate, \
                          dest_country=CU,SO or dest_e164=+882*."
                .into(),
            rule: spec(
                "calls to premium destinations",
                &[("dest_type", "premium_rate")],
                Metric::Attempts,
                Condition::Above,
                0.0,
                15,
                1,
            ),
        },
        Template {
            id: "source_attempt_spike".into(),
            description:
                "Attempts from one source (a trunk, a PBX) more than three times those of the same hour a \
                          week earlier: a compromised account dialling out, or a flood."
                    .into(),
            rule: spec(
                "attempt spike from pbx-1",
                &[("source", "pbx-1")],
                Metric::Attempts,
                Condition::RiseVsWeek,
                2.0,
                60,
                100,
            ),
        },
        Template {
            id: "short_call_burst".into(),
            description:
                "A burst of very short calls (Wangiri, SIM-box tests, robocalls): more than 200 calls of at \
                          most 6 seconds in 10 minutes."
                    .into(),
            rule: spec(
                "short-call burst",
                &[("max_duration", "6")],
                Metric::Attempts,
                Condition::Above,
                200.0,
                10,
                0,
            ),
        },
        Template {
            id: "asr_collapse".into(),
            description:
                "ASR of a trunk below 30 % over 15 minutes, once it carried at least 50 calls: a carrier \
                          failing or routing to a dead end."
                    .into(),
            rule: spec(
                "ASR collapse on trunk-1",
                &[("source", "trunk-1")],
                Metric::Asr,
                Condition::Below,
                0.3,
                15,
                50,
            ),
        },
        Template {
            id: "account_spend_spike".into(),
            description:
                "An account's spend (revenue) over an hour more than doubles the same hour a week earlier."
                    .into(),
            rule: spec(
                "spend spike of acme",
                &[("account_code", "acme")],
                Metric::Revenue,
                Condition::RiseVsWeek,
                1.0,
                60,
                20,
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_is_a_valid_rule_with_its_own_id() {
        let all = super::all();
        let mut ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        for t in &all {
            t.rule.validate().unwrap_or_else(|e| panic!("{}: {e}", t.id));
        }
    }
}
