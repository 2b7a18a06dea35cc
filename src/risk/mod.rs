//! Risk: the flags a click or an attribution carries so that a payout
//! system can hold a reward instead of paying it blindly (README: "Rewards").
//! The edge sets the click's flags (`paid_click_id` from the query walk on
//! the request path, `click_flood` from `flood` in the writer thread); the
//! matcher adds `self_referral` and decides `held` by `match.hold_risks`.

pub mod flood;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One risk flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The click's query carried an ad platform's click id: the advocate
    /// may be buying ads on their own referral link.
    PaidClickId,
    /// More than `risk.flood_clicks` human clicks on one code from one
    /// client network within `risk.flood_window_secs`.
    ClickFlood,
    /// The customer's domain is the advocate's own company's.
    SelfReferral,
}

impl Flag {
    /// Every flag, in the order they are written.
    pub const ALL: [Flag; 3] = [Flag::PaidClickId, Flag::ClickFlood, Flag::SelfReferral];

    pub fn as_str(self) -> &'static str {
        match self {
            Flag::PaidClickId => "paid_click_id",
            Flag::ClickFlood => "click_flood",
            Flag::SelfReferral => "self_referral",
        }
    }

    pub fn parse(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of flags, written as a JSON array of their names (`[]` when clean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);

    pub fn with(self, flag: Flag) -> Flags {
        Flags(self.0 | flag.bit())
    }

    pub fn set_if(self, flag: Flag, on: bool) -> Flags {
        if on { self.with(flag) } else { self }
    }

    pub fn has(self, flag: Flag) -> bool {
        self.0 & flag.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Whether any flag of `self` is in `other`.
    pub fn meets(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.has(*f))
    }

    /// The bits, for packing (`from_bits` reads them back; unknown bits
    /// from a newer writer are dropped).
    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Flags {
        Flags(bits & Flag::ALL.iter().fold(0, |all, f| all | f.bit()))
    }

    /// A comma-separated list of flag names (`match.hold_risks`); the
    /// error names the first unknown one.
    pub fn parse_list(names: &[String]) -> Result<Flags, String> {
        names.iter().try_fold(Flags::NONE, |flags, name| {
            Flag::parse(name.trim())
                .map(|f| flags.with(f))
                .ok_or_else(|| name.clone())
        })
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Flag::as_str))
    }
}

/// Reads a flag list back (a click event's `risk`); names it does not know
/// (from a newer edge) are skipped, and an event from before flags reads
/// as clean through `#[serde(default)]`.
impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flags, D::Error> {
        let names = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(names
            .iter()
            .filter_map(|n| Flag::parse(n))
            .fold(Flags::NONE, Flags::with))
    }
}

/// Query parameters by which ad platforms tag their clicks (Google Ads
/// `gclid`/`gbraid`/`wbraid`, Meta `fbclid`, Microsoft `msclkid`, LinkedIn
/// `li_fat_id`, TikTok `ttclid`, X `twclid`, Campaign Manager `dclid`).
pub const PAID_CLICK_PARAMS: [&str; 9] = [
    "gclid",
    "gbraid",
    "wbraid",
    "fbclid",
    "msclkid",
    "li_fat_id",
    "ttclid",
    "twclid",
    "dclid",
];

/// Whether a (decoded) query parameter name is an ad platform's click id.
/// Exact, case-sensitive names, as the platforms write them; the length
/// test rejects nearly every other name before a comparison.
#[inline]
pub fn is_paid_click_param(name: &str) -> bool {
    matches!(name.len(), 5..=9) && PAID_CLICK_PARAMS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event writer's form is held to serde_json's in `events::event`.
    #[test]
    fn flags_are_written_as_their_names() {
        let cases = [
            Flags::NONE,
            Flags::NONE.with(Flag::ClickFlood),
            Flags::NONE.with(Flag::SelfReferral).with(Flag::PaidClickId),
        ];
        for flags in cases {
            let json = serde_json::to_vec(&flags).unwrap();
            let back: Flags = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, flags);
            assert_eq!(Flags::from_bits(flags.bits()), flags);
        }
        assert_eq!(
            serde_json::to_string(&cases[2]).unwrap(),
            r#"["paid_click_id","self_referral"]"#
        );
        let newer: Flags = serde_json::from_str(r#"["click_flood","from_the_future"]"#).unwrap();
        assert_eq!(newer, Flags::NONE.with(Flag::ClickFlood));
        assert_eq!(Flags::from_bits(0xff).iter().count(), 3);
    }

    #[test]
    fn hold_lists_name_the_unknown_flag() {
        let list = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            Flags::parse_list(&list("self_referral, click_flood")),
            Ok(Flags::NONE.with(Flag::SelfReferral).with(Flag::ClickFlood))
        );
        assert_eq!(Flags::parse_list(&[]), Ok(Flags::NONE));
        assert_eq!(
            Flags::parse_list(&list("click_flood,bots")),
            Err("bots".into())
        );
    }

    #[test]
    fn paid_click_ids_by_exact_name() {
        for name in PAID_CLICK_PARAMS {
            assert!(is_paid_click_param(name), "{name}");
        }
        for name in [
            "",
            "gcli",
            "GCLID",
            "gclid2",
            "utm_source",
            "fbclid_",
            "clid",
        ] {
            assert!(!is_paid_click_param(name), "{name}");
        }
    }
}
