//! The README's command blocks that need no broker, run as written against
//! the binary (`common::readme`): the quick start's click and conversion,
//! the Rules, Sharing, Conversions and Links API blocks. They bind the README's
//! fixed ports (8080, 9090), so they run one after another in one test.

use crate::common::readme;

#[test]
fn the_readme_blocks_run_as_written() {
    crate::needs!(Jq);
    let quick_start = readme::blocks("## Quick start");
    assert_eq!(quick_start.len(), 3, "setup, a click, a conversion");
    assert!(
        quick_start[0].contains("bash .ci/test"),
        "the setup block is not run here"
    );
    let out = readme::run("quick-start", &quick_start[1..], 120);
    assert!(out.contains("rf_click="), "{out}");
    assert!(out.contains(r#""code":"demo""#), "{out}");
    assert!(
        out.contains(r#""event_id":"crm-1:signup","advocate_id":"adv-1001""#),
        "{out}"
    );

    for section in [
        "## Rules and split tests",
        "## Sharing",
        "## Conversions",
        "## Operations",
    ] {
        let blocks = readme::blocks(section);
        assert!(!blocks.is_empty(), "README {section}: a command block");
        let out = readme::run(section.trim_start_matches("## "), &blocks, 120);
        if section == "## Rules and split tests" {
            let lines: Vec<&str> = out.lines().collect();
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("https://apps.apple.com/app/id0000000001?rf_click=")),
                "{out}"
            );
            let variants: Vec<&&str> = lines
                .iter()
                .filter(|l| l.starts_with("https://www.adt.example/signup-"))
                .collect();
            assert_eq!(variants.len(), 2, "{out}");
            assert_eq!(
                variants[0].split('?').next(),
                variants[1].split('?').next(),
                "the visitor keeps the variant: {out}"
            );
            assert!(out.contains(r#"{"rule":0,"variant":null,"target":"https://apps.apple.com/app/id0000000001?rf_click="#), "{out}");
        }
        if section == "## Operations" {
            assert!(
                out.contains("302 https://brand.com/spring?rf_click="),
                "{out}"
            );
            assert!(out.contains(r#"{"accepted":2,"rejected":[]}"#), "{out}");
        }
    }
}
