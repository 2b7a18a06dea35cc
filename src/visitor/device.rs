//! Device class, operating system and browser from the user agent, parsed by
//! the `woothee` crate and cached per distinct user agent: in the event
//! writer for every click, and on the request path only for a link whose
//! rules ask for the device or the OS (`cached`), so both read the same
//! parse.

use std::collections::HashMap;
use std::sync::Arc;

/// What the event says about the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub class: &'static str,
    pub os: Option<Box<str>>,
    pub browser: Option<Box<str>>,
}

/// The device classes a redirect rule names (`device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Mobile,
    Tablet,
    Desktop,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Mobile, Class::Tablet, Class::Desktop];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Mobile => "mobile",
            Class::Tablet => "tablet",
            Class::Desktop => "desktop",
        }
    }
}

/// The operating-system families a redirect rule names (`os`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Ios,
    Android,
    Windows,
    Macos,
    Linux,
    Chromeos,
}

impl Os {
    pub const ALL: [Os; 6] = [
        Os::Ios,
        Os::Android,
        Os::Windows,
        Os::Macos,
        Os::Linux,
        Os::Chromeos,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Os::Ios => "ios",
            Os::Android => "android",
            Os::Windows => "windows",
            Os::Macos => "macos",
            Os::Linux => "linux",
            Os::Chromeos => "chromeos",
        }
    }

    /// The family of an `os` the event records (woothee's names).
    pub fn of(os: &str) -> Option<Os> {
        Some(match os {
            "iPhone" | "iPad" | "iPod" | "iOS" => Os::Ios,
            "Android" => Os::Android,
            "Mac OSX" => Os::Macos,
            "Linux" => Os::Linux,
            "ChromeOS" => Os::Chromeos,
            _ if os.starts_with("Windows") && os != "Windows Phone OS" && os != "Windows CE" => {
                Os::Windows
            }
            _ => return None,
        })
    }
}

impl Device {
    /// The class a rule's `device` matches: `None` for bots and others.
    pub fn rule_class(&self) -> Option<Class> {
        match self.class {
            "mobile" => Some(Class::Mobile),
            "tablet" => Some(Class::Tablet),
            "desktop" => Some(Class::Desktop),
            _ => None,
        }
    }

    /// The family a rule's `os` matches.
    pub fn os_family(&self) -> Option<Os> {
        self.os.as_deref().and_then(Os::of)
    }
}

/// `DeviceParser::device` with this thread's parser: the request path's
/// way in (a cache hit for a user agent seen before on this thread).
pub fn cached(user_agent: &str) -> Option<Arc<Device>> {
    thread_local! {
        static PARSER: std::cell::RefCell<DeviceParser> = std::cell::RefCell::new(DeviceParser::new());
    }
    PARSER.with_borrow_mut(|parser| parser.device(user_agent))
}

/// Distinct user agents remembered; past this the cache starts over.
const CACHE_CAPACITY: usize = 20_000;

/// A user-agent parser with a cache, owned by one thread. The cache hashes
/// with foldhash, as the request path's bot cache does: SipHash over a
/// 130-byte user agent was half of the lookup's cost.
#[derive(Default)]
pub struct DeviceParser {
    parser: woothee::parser::Parser,
    cache: HashMap<Box<str>, Option<Arc<Device>>, foldhash::fast::RandomState>,
}

impl std::fmt::Debug for DeviceParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceParser")
            .field("cached", &self.cache.len())
            .finish()
    }
}

fn known(value: &str) -> Option<Box<str>> {
    (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN).then(|| value.into())
}

impl DeviceParser {
    pub fn new() -> DeviceParser {
        DeviceParser::default()
    }

    /// Parses without the cache.
    pub fn parse(&self, user_agent: &str) -> Option<Device> {
        let r = self.parser.parse(user_agent)?;
        let tablet = r.os == "iPad" || (r.os == "Android" && !user_agent.contains("Mobile"));
        let class = match r.category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" if tablet => "tablet",
            "smartphone" | "mobilephone" => "mobile",
            "crawler" => "bot",
            "appliance" | "misc" => "other",
            _ => return None,
        };
        Some(Device {
            class,
            os: known(r.os),
            browser: known(r.name),
        })
    }

    /// Parses a user agent, remembering the answer.
    pub fn device(&mut self, user_agent: &str) -> Option<Arc<Device>> {
        if let Some(hit) = self.cache.get(user_agent) {
            return hit.clone();
        }
        let device = self.parse(user_agent).map(Arc::new);
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(user_agent.into(), device.clone());
        device
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ua: &str) -> (String, Option<String>, Option<String>) {
        let d = DeviceParser::new().parse(ua).expect("parsed");
        (
            d.class.to_owned(),
            d.os.map(String::from),
            d.browser.map(String::from),
        )
    }

    #[test]
    fn common_devices() {
        let (class, os, browser) = parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        );
        assert_eq!(
            (class.as_str(), os.as_deref(), browser.as_deref()),
            ("desktop", Some("Windows 10"), Some("Chrome"))
        );
        let (class, os, browser) = parse(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(
            (class.as_str(), os.as_deref(), browser.as_deref()),
            ("mobile", Some("iPhone"), Some("Safari"))
        );
        let (class, _, _) = parse(
            "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        );
        assert_eq!(class, "tablet");
        let (class, _, browser) = parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        );
        assert_eq!(
            (class.as_str(), browser.as_deref()),
            ("desktop", Some("Firefox"))
        );
        let (class, _, _) = parse("Googlebot/2.1 (+http://www.google.com/bot.html)");
        assert_eq!(class, "bot");
    }

    #[test]
    fn unknown_agents_have_no_device_and_the_cache_is_bounded() {
        let mut p = DeviceParser::new();
        assert_eq!(p.device("zzz"), None);
        for i in 0..(CACHE_CAPACITY + 5) {
            p.device(&format!("agent {i}"));
        }
        assert!(p.cache.len() <= CACHE_CAPACITY);
    }
}
