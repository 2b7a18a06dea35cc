use super::*;
use crate::attribution::ClickId;
use crate::links::variants::*;

/// A visitor whose every answer is set by the test, counting what was asked.
#[derive(Default)]
struct Fake {
    now_ms: u64,
    params: Vec<(&'static str, &'static str)>,
    language: Option<&'static str>,
    device: (Option<Class>, Option<Os>),
    country: Option<[u8; 2]>,
    asked_device: u32,
    asked_country: u32,
}

impl Visit for Fake {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn has_param(&mut self, name: &str, value: &str) -> bool {
        self.params.iter().any(|(n, v)| *n == name && *v == value)
    }
    fn language(&mut self) -> Option<Language> {
        self.language.and_then(Language::primary)
    }
    fn device(&mut self) -> (Option<Class>, Option<Os>) {
        self.asked_device += 1;
        self.device
    }
    fn country(&mut self) -> Option<[u8; 2]> {
        self.asked_country += 1;
        self.country
    }
    fn first_click(&mut self) -> u128 {
        0
    }
}

fn rules(json: Value) -> Rules<'static> {
    RulesField::check("rules", Some(&json))
        .map(|r| RulesField::own(&r))
        .unwrap()
}

fn chosen(rules: &Rules<'_>, visit: &mut Fake) -> Option<u8> {
    rules.first_holding(visit).map(|r| r.index)
}

fn error_of(field: &'static str, json: Value) -> String {
    let result = if field == "rules" {
        RulesField::check(field, Some(&json)).map(|_| ())
    } else {
        VariantsField::check(field, Some(&json)).map(|_| ())
    };
    result.unwrap_err().to_string()
}

#[test]
fn every_condition_holds_or_not() {
    let r = rules(json!([
        {"when": {"device": ["tablet"]}, "target": "https://a.example/tablet"},
        {"when": {"os": ["android", "chromeos"]}, "target": "https://a.example/android"},
        {"when": {"country": ["ca", "FR"]}, "target": "https://a.example/ca-fr"},
        {"when": {"language": ["de"]}, "target": "https://a.example/de"},
        {"when": {"query": {"src": "print run", "v": "2"}}, "target": "https://a.example/print"},
        {"when": {"after": "2030-01-01T00:00:00Z"}, "target": "https://a.example/later"},
        {"when": {"before": "2020-01-01T00:00:00Z"}, "target": "https://a.example/earlier"},
        {"when": {"device": ["mobile"], "os": ["ios"]}, "target": "https://a.example/iphone", "redirect": 307},
    ]));
    let now = 1_800_000_000_000; // 2027
    let visit = || Fake {
        now_ms: now,
        ..Fake::default()
    };
    assert_eq!(chosen(&r, &mut visit()), None);
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                device: (Some(Class::Tablet), Some(Os::Ios)),
                ..visit()
            }
        ),
        Some(0)
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                device: (Some(Class::Mobile), Some(Os::Android)),
                ..visit()
            }
        ),
        Some(1)
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                country: Some(*b"CA"),
                ..visit()
            }
        ),
        Some(2)
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                country: Some(*b"FR"),
                ..visit()
            }
        ),
        Some(2)
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                country: Some(*b"US"),
                ..visit()
            }
        ),
        None
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                language: Some("de"),
                ..visit()
            }
        ),
        Some(3)
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                params: vec![("src", "print run"), ("v", "2")],
                ..visit()
            }
        ),
        Some(4)
    );
    // Every parameter must be there.
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                params: vec![("src", "print run")],
                ..visit()
            }
        ),
        None
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                now_ms: 1_900_000_000_000,
                ..visit()
            }
        ),
        Some(5)
    );
    assert_eq!(
        chosen(
            &r,
            &mut Fake {
                now_ms: 1_500_000_000_000,
                ..visit()
            }
        ),
        Some(6)
    );
    let mut iphone = Fake {
        device: (Some(Class::Mobile), Some(Os::Ios)),
        ..visit()
    };
    let rule = r.first_holding(&mut iphone).unwrap();
    assert_eq!((rule.index, rule.target), (7, "https://a.example/iphone"));
    assert_eq!(rule.redirect.map(RedirectStatus::as_u16), Some(307));
    // The device was parsed once for four conditions asking for it.
    assert!(iphone.asked_device >= 1);
}

#[test]
fn the_first_rule_that_holds_wins_and_the_visitor_is_asked_only_what_is_needed() {
    let r = rules(json!([
        {"when": {"query": {"a": "1"}, "country": ["DE"]}, "target": "https://a.example/1"},
        {"when": {"language": ["en"]}, "target": "https://a.example/2"},
        {"when": {"language": ["en"], "device": ["desktop"]}, "target": "https://a.example/3"},
    ]));
    let mut v = Fake {
        language: Some("en"),
        device: (Some(Class::Desktop), None),
        ..Fake::default()
    };
    assert_eq!(chosen(&r, &mut v), Some(1));
    // The query did not hold, so the country was never looked up; the
    // second rule held before any rule asked for the device.
    assert_eq!((v.asked_country, v.asked_device), (0, 0));
    // With no language (a `*` or malformed header), no language rule holds.
    assert_eq!(chosen(&r, &mut Fake::default()), None);
}

#[test]
fn sixteen_rules_whose_last_holds() {
    let mut list: Vec<Value> = (0..15)
        .map(|i| json!({"when": {"country": ["DE", "AT"], "query": {"p": i.to_string()}}, "target": format!("https://a.example/{i}")}))
        .collect();
    list.push(json!({"when": {"country": ["CA"]}, "target": "https://a.example/last"}));
    let r = rules(Value::Array(list));
    let mut v = Fake {
        country: Some(*b"CA"),
        ..Fake::default()
    };
    assert_eq!(
        r.first_holding(&mut v).map(|r| (r.index, r.target)),
        Some((15, "https://a.example/last"))
    );
    let too_many: Vec<Value> = (0..17)
        .map(|_| json!({"when": {"os": ["ios"]}, "target": "https://a.example/"}))
        .collect();
    assert_eq!(
        error_of("rules", Value::Array(too_many)),
        "rules: has more than 16 entries"
    );
}

#[test]
fn mistakes_are_named_by_their_path() {
    let ok = json!({"when": {"os": ["ios"]}, "target": "https://a.example/"});
    let with = |bad: Value| json!([ok, ok, ok, bad]);
    for (bad, expected) in [
        (
            json!({"when": {"country": ["UK"]}, "target": "https://a.example/"}),
            "rules[3].when.country[0]: is not an ISO 3166-1 code: the United Kingdom is GB",
        ),
        (
            json!({"when": {"country": ["CAN"]}, "target": "https://a.example/"}),
            "rules[3].when.country[0]: must be an ISO 3166-1 alpha-2 country code (CA, DE, US)",
        ),
        (
            json!({"when": {"country": [7]}, "target": "https://a.example/"}),
            "rules[3].when.country[0]: must be a string",
        ),
        (
            json!({"when": {"device": ["phone"]}, "target": "https://a.example/"}),
            "rules[3].when.device[0]: must be one of mobile, tablet, desktop",
        ),
        (
            json!({"when": {"os": ["ios", "beos"]}, "target": "https://a.example/"}),
            "rules[3].when.os[1]: must be one of ios, android, windows, macos, linux, chromeos",
        ),
        (
            json!({"when": {"language": ["fr-CA"]}, "target": "https://a.example/"}),
            "rules[3].when.language[0]: must be a primary language subtag: 2 or 3 letters (fr, en, pt)",
        ),
        (
            json!({"when": {}, "target": "https://a.example/"}),
            "rules[3].when: must name at least one condition",
        ),
        (
            json!({"target": "https://a.example/"}),
            "rules[3].when: is required",
        ),
        (
            json!({"when": {"city": ["Paris"]}, "target": "https://a.example/"}),
            "rules[3].when.city: is not a condition (device, os, country, language, query, after, before)",
        ),
        (
            json!({"when": {"os": ["ios"]}}),
            "rules[3].target: is required",
        ),
        (
            json!({"when": {"os": ["ios"]}, "target": "ftp://a.example/"}),
            "rules[3].target: must be an http or https URL",
        ),
        (
            json!({"when": {"os": ["ios"]}, "target": "https://a.example/", "redirect": 200}),
            "rules[3].redirect: must be 301, 302, 303, 307 or 308",
        ),
        (
            json!({"when": {"after": "tomorrow"}, "target": "https://a.example/"}),
            "rules[3].when.after: must be an RFC 3339 date-time",
        ),
        (
            json!({"when": {"after": "2030-01-01T00:00:00Z", "before": "2029-01-01T00:00:00Z"}, "target": "https://a.example/"}),
            "rules[3].when.before: must be later than after",
        ),
        (
            json!({"when": {"query": {"a": 1}}, "target": "https://a.example/"}),
            "rules[3].when.query.a: must be a string",
        ),
        (
            json!({"when": {"os": ["ios"]}, "target": "https://a.example/", "weight": 3}),
            "rules[3].weight: is not a rule field (when, target, redirect)",
        ),
        (json!("x"), "rules[3]: must be an object"),
    ] {
        assert_eq!(error_of("rules", with(bad)), expected);
    }
    assert_eq!(error_of("rules", json!({})), "rules: must be an array");
    // An empty list is no rules.
    assert!(
        RulesField::check("rules", Some(&json!([])))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn variant_mistakes_are_named_by_their_path() {
    for (bad, expected) in [
        (
            json!([{"target": "https://a.example/a", "weight": 100}]),
            "variants: must have 2 to 4 variants",
        ),
        (
            json!([{"target": "https://a.example/a", "weight": 50}, {"target": "https://a.example/b", "weight": 40}]),
            "variants: weights sum to 90, must be 100",
        ),
        (
            json!([{"target": "https://a.example/a", "weight": 50}, {"target": "https://a.example/b", "weight": 0}]),
            "variants[1].weight: must be an integer from 1 to 99",
        ),
        (
            json!([{"target": "https://a.example/a", "weight": 50}, {"weight": 50}]),
            "variants[1].target: is required",
        ),
        (
            json!([{"target": "https://a.example/a", "weight": 50}, {"target": "https://a.example/b", "weight": 50, "rule": 1}]),
            "variants[1].rule: is not a variant field (target, weight)",
        ),
    ] {
        assert_eq!(error_of("variants", bad), expected);
    }
}

#[test]
fn a_weight_written_with_a_zero_fraction_is_a_whole_number() {
    let v = json!([{"target": "https://a.example/a", "weight": 30.0}, {"target": "https://a.example/b", "weight": 70}]);
    assert!(VariantsField::check("variants", Some(&v)).is_ok());
    let half = json!([{"target": "https://a.example/a", "weight": 30.5}, {"target": "https://a.example/b", "weight": 69.5}]);
    assert_eq!(
        error_of("variants", half),
        "variants[0].weight: must be an integer from 1 to 99"
    );
}

#[test]
fn packed_rules_and_variants_read_back_as_written() {
    let json = RulesField::example();
    let r = rules(json.clone());
    assert_eq!(RulesField::wire(&r.clone()), Some(json));
    assert!(r.is_well_formed());
    let v = VariantsField::own(
        &VariantsField::check("variants", Some(&VariantsField::example())).unwrap(),
    );
    assert_eq!(VariantsField::wire(&v), Some(VariantsField::example()));
    // Damaged bytes are refused, never read past.
    for cut in 0..r.0.len() {
        assert!(!Rules::packed(&r.0[..cut]).is_well_formed(), "{cut}");
        let mut anything = Fake::default();
        let _ = Rules::packed(&r.0[..cut]).first_holding(&mut anything);
    }
}

/// Pearson's chi-square statistic of `counts` against `weights` (percent).
fn chi_square(counts: &[u64], weights: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(weights)
        .map(|(&c, &w)| {
            let expected = n as f64 * w as f64 / 100.0;
            (c as f64 - expected).powi(2) / expected
        })
        .sum()
}

#[test]
fn weights_hold_over_ten_thousand_first_visits() {
    // Critical values of chi-square at p = 0.001 for 1, 2 and 3 degrees of
    // freedom: a fair draw fails this one time in a thousand.
    let critical = [10.828, 13.816, 16.266];
    for weights in [
        vec![50, 50],
        vec![10, 90],
        vec![20, 30, 50],
        vec![25, 25, 25, 25],
        vec![1, 97, 1, 1],
    ] {
        let list: Vec<Value> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| json!({"target": format!("https://a.example/{i}"), "weight": w}))
            .collect();
        let v = VariantsField::own(
            &VariantsField::check("variants", Some(&Value::Array(list))).unwrap(),
        );
        let mut counts = vec![0u64; weights.len()];
        let now = 1_800_000_000_000;
        for i in 0..10_000 {
            let (index, _) = v.pick(ClickId::new(now + i).as_u128(), "Ab3xK9q").unwrap();
            counts[usize::from(index)] += 1;
        }
        let statistic = chi_square(&counts, &weights);
        assert!(
            statistic < critical[weights.len() - 2],
            "weights {weights:?}: counts {counts:?}, chi-square {statistic:.2}"
        );
    }
}

#[test]
fn a_visitor_keeps_their_variant_and_tests_draw_independently() {
    let v = VariantsField::own(
        &VariantsField::check("variants", Some(&VariantsField::example())).unwrap(),
    );
    let first = ClickId::new(1_800_000_000_000).as_u128();
    let once = v.pick(first, "a").unwrap().0;
    assert!((0..100).all(|_| v.pick(first, "a").unwrap().0 == once));
    // One visitor's variants in two tests: agree about half the time.
    let agree = (0..4000u64)
        .filter(|i| {
            let id = ClickId::new(1_800_000_000_000 + i).as_u128();
            v.pick(id, "a").unwrap().0 == v.pick(id, "b").unwrap().0
        })
        .count();
    assert!((1800..2200).contains(&agree), "{agree}");
}

#[test]
fn query_names_and_values_are_measured_in_characters() {
    // 128 characters of 4 bytes each: as JSON Schema's maxLength counts.
    let name: String = "𝕋".repeat(MAX_QUERY_NAME_CHARS);
    let value: String = "é".repeat(MAX_QUERY_VALUE_CHARS);
    let r = rules(
        json!([{"when": {"query": {name.clone(): value.clone()}}, "target": "https://a.example/"}]),
    );
    assert_eq!(
        RulesField::wire(&r).unwrap()[0]["when"]["query"][&name],
        value.as_str()
    );
    let long = format!("{name}x");
    assert_eq!(
        error_of(
            "rules",
            json!([{"when": {"query": {long.clone(): "1"}}, "target": "https://a.example/"}])
        ),
        format!("rules[0].when.query.{long}: a parameter name is 1 to 128 characters")
    );
}
