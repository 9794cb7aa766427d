use super::*;

fn plan(spec: DiallingPlanSpec) -> DiallingPlan {
    spec.plan().unwrap()
}

fn home(country: &str) -> DiallingPlan {
    plan(DiallingPlanSpec { home_country: Some(country.into()), ..DiallingPlanSpec::default() })
}

fn e164(p: &DiallingPlan, raw: &str) -> (Option<String>, Option<String>, &'static str) {
    let n = p.normalise(raw);
    (n.e164.as_deref().map(str::to_string), n.country.as_deref().map(str::to_string), n.kind)
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn national_numbers_resolve_with_the_home_countrys_trunk_prefix() {
    let gb = home("GB");
    assert_eq!(e164(&gb, "07400 123456"), (some("+447400123456"), some("GB"), "mobile"));
    assert_eq!(e164(&gb, "01212345678"), (some("+441212345678"), some("GB"), "fixed_line"));
    assert_eq!(e164(&gb, "0800 123 4567"), (some("+448001234567"), some("GB"), "toll_free"));
    assert_eq!(e164(&gb, "09012345678"), (some("+449012345678"), some("GB"), "premium_rate"));
    let de = home("de");
    assert_eq!(e164(&de, "030 123456"), (some("+4930123456"), some("DE"), "fixed_line"));
    assert_eq!(e164(&de, "015123456789"), (some("+4915123456789"), some("DE"), "mobile"));
    let us = home("US");
    assert_eq!(e164(&us, "1 (201) 555-0123").0, some("+12015550123"));
    assert_eq!(e164(&us, "2015550123").0, some("+12015550123"), "ten digits without the trunk 1");
    assert_eq!(e164(&us, "2015550123").1, some("US"));
}

#[test]
fn international_prefixes_are_the_home_countrys_own() {
    // From the US, 011 dials out; from the UK and Germany, 00.
    assert_eq!(e164(&home("US"), "011 44 7400 123456"), (some("+447400123456"), some("GB"), "mobile"));
    assert_eq!(e164(&home("GB"), "0033142685300"), (some("+33142685300"), some("FR"), "fixed_line"));
    assert_eq!(e164(&home("DE"), "00 1 201 555 0123").1, some("US"));
    // A Canadian number shares +1 with the US: the country comes from the number.
    assert_eq!(e164(&home("GB"), "00 1 613 555 0123").1, some("CA"));
}

#[test]
fn plus_numbers_need_no_plan() {
    let none = DiallingPlan::default();
    assert_eq!(e164(&none, "+33 1 42 68 53 00"), (some("+33142685300"), some("FR"), "fixed_line"));
    assert_eq!(e164(&none, "sip:+447400123456@gw.example.net;user=phone").0, some("+447400123456"));
    assert_eq!(e164(&none, "tel:+4930123456").1, some("DE"));
}

#[test]
fn tech_and_custom_prefixes_are_stripped_first() {
    let gb = plan(DiallingPlanSpec {
        home_country: Some("GB".into()),
        strip_prefixes: vec!["9".into(), "1010288".into()],
        ..DiallingPlanSpec::default()
    });
    assert_eq!(e164(&gb, "907400123456").0, some("+447400123456"), "outside-line 9");
    assert_eq!(e164(&gb, "1010288 07400123456").0, some("+447400123456"), "longest prefix first");
    let trunk = plan(DiallingPlanSpec {
        international_prefixes: vec!["00".into()],
        digits_are_e164: true,
        ..DiallingPlanSpec::default()
    });
    assert_eq!(e164(&trunk, "447400123456").0, some("+447400123456"));
    assert_eq!(e164(&trunk, "0033142685300").0, some("+33142685300"));
}

#[test]
fn extensions_sip_users_and_unresolvable_values_stay_unnormalised() {
    let gb = home("GB");
    for (raw, kind) in [
        ("1001", "extension"),
        ("200", "extension"),
        ("alice", "sip_user"),
        ("sip:alice@pbx.example.com", "sip_user"),
        ("anonymous", "sip_user"),
        ("*99#", "extension"),
        ("*1003", "extension"),
        ("s", "extension"),
        ("t", "extension"),
        ("test", "sip_user"),
        ("+44 abc", "invalid"),
        ("12-34-5a", "sip_user"),
        ("", "empty"),
        ("   ", "empty"),
        ("0123", "extension"),
        ("07000000000000000", "invalid"),
    ] {
        let n = gb.normalise(raw);
        assert_eq!((n.e164.as_deref(), n.country.as_deref(), n.kind), (None, None, kind), "{raw:?}");
    }
    // National digits from a source with no home country are never guessed.
    assert_eq!(e164(&DiallingPlan::default(), "07400123456"), (None, None, "unresolved"));
}

#[test]
fn plans_refuse_what_cannot_apply_naming_the_field() {
    let bad = [
        (DiallingPlanSpec { home_country: Some("XX".into()), ..DiallingPlanSpec::default() }, "home_country"),
        (
            DiallingPlanSpec { strip_prefixes: vec!["9a".into()], ..DiallingPlanSpec::default() },
            "strip_prefixes",
        ),
        (
            DiallingPlanSpec { international_prefixes: vec![String::new()], ..DiallingPlanSpec::default() },
            "international_prefixes",
        ),
        (
            DiallingPlanSpec {
                home_country: Some("GB".into()),
                digits_are_e164: true,
                ..DiallingPlanSpec::default()
            },
            "digits_are_e164",
        ),
    ];
    for (spec, field) in bad {
        assert_eq!(spec.plan().unwrap_err().field, field, "{spec:?}");
    }
}

#[test]
fn every_kind_is_listed() {
    for raw in ["+447400123456", "1001", "alice", "", "*1", "07400123456"] {
        let kind = DiallingPlan::default().normalise(raw).kind;
        assert!(KINDS.contains(&kind), "{kind}");
    }
}

#[test]
fn the_home_countrys_own_international_prefix_after_a_stripped_tech_prefix() {
    let us = plan(DiallingPlanSpec {
        home_country: Some("us".into()),
        strip_prefixes: vec!["9".into()],
        ..DiallingPlanSpec::default()
    });
    assert_eq!(e164(&us, "9011 33 1 42 68 53 00"), (some("+33142685300"), some("FR"), "fixed_line"));
    assert_eq!(e164(&home("US"), "011 33 1 42 68 53 00").1, some("FR"));
    assert_eq!(e164(&home("FR"), "00 1 201 555 0123").0, some("+12015550123"));
    assert_eq!(e164(&home("FR"), "01 42 68 53 00").0, some("+33142685300"), "a national 01 is no prefix");
}

#[test]
fn international_numbers_outside_the_metadatas_ranges_keep_their_e164_form() {
    // CDR-Stats' sample dials +34 79…, a range libphonenumber does not list.
    let n = DiallingPlan::default().normalise("+34798400122");
    assert_eq!(
        (n.e164.as_deref(), n.country.as_deref(), n.kind),
        (Some("+34798400122"), Some("ES"), "unknown")
    );
    // +44 is shared by GB, GG, JE and IM: no country is picked for an unlisted range.
    let n = DiallingPlan::default().normalise("+44 1111 111111");
    assert_eq!((n.e164.as_deref(), n.country), (Some("+441111111111"), None));
    // An unknown calling code is no number.
    assert_eq!(DiallingPlan::default().normalise("+999 1234 5678").kind, "invalid");
    // National values are still only taken when valid.
    assert_eq!(home("GB").normalise("0111 111 1111").kind, "invalid");
}
