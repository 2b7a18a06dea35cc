//! Telling machines from people. Link-preview fetchers (Slack, LinkedIn, X,
//! Facebook, WhatsApp, Discord, Telegram, Teams) and email scanners (Microsoft
//! Safe Links, Proofpoint, Mimecast, Barracuda) are named, so the event says
//! which one it was; every other crawler is recognised by the maintained
//! pattern list of the `isbot` crate. Results are cached per user agent, so
//! the regular expressions run once per distinct agent, not once per click.

use dashmap::DashMap;

/// Why a request was classified as a machine rather than a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotReason {
    /// `HEAD` requests come from link checkers and scanners, never from a
    /// person following a link.
    HeadRequest,
    /// Every browser sends a `User-Agent`.
    NoUserAgent,
    /// A social or chat app fetching the page to draw a preview.
    LinkPreview(&'static str),
    /// An email security product opening every link before the person does.
    EmailScanner(&'static str),
    /// Any other crawler, monitor or HTTP library.
    Crawler,
}

impl BotReason {
    /// The `bot_reason` of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            BotReason::HeadRequest => "head_request",
            BotReason::NoUserAgent => "no_user_agent",
            BotReason::LinkPreview(name) | BotReason::EmailScanner(name) => name,
            BotReason::Crawler => "crawler",
        }
    }
}

/// Named fetchers: a lower-case user-agent fragment and the reason it gives.
const NAMED: &[(&str, BotReason)] = &[
    ("slackbot", BotReason::LinkPreview("link_preview:slack")),
    (
        "slack-imgproxy",
        BotReason::LinkPreview("link_preview:slack"),
    ),
    (
        "linkedinbot",
        BotReason::LinkPreview("link_preview:linkedin"),
    ),
    // Before Twitterbot: Telegram's agent says "like TwitterBot".
    (
        "telegrambot",
        BotReason::LinkPreview("link_preview:telegram"),
    ),
    ("twitterbot", BotReason::LinkPreview("link_preview:x")),
    (
        "facebookexternalhit",
        BotReason::LinkPreview("link_preview:facebook"),
    ),
    (
        "facebookcatalog",
        BotReason::LinkPreview("link_preview:facebook"),
    ),
    (
        "meta-externalagent",
        BotReason::LinkPreview("link_preview:facebook"),
    ),
    ("whatsapp/", BotReason::LinkPreview("link_preview:whatsapp")),
    ("discordbot", BotReason::LinkPreview("link_preview:discord")),
    (
        "skypeuripreview",
        BotReason::LinkPreview("link_preview:teams"),
    ),
    (
        "microsoftpreview",
        BotReason::LinkPreview("link_preview:teams"),
    ),
    ("applebot", BotReason::LinkPreview("link_preview:apple")),
    (
        "bingpreview",
        BotReason::EmailScanner("email_scanner:microsoft"),
    ),
    (
        "safelinks",
        BotReason::EmailScanner("email_scanner:microsoft"),
    ),
    (
        "office365",
        BotReason::EmailScanner("email_scanner:microsoft"),
    ),
    (
        "proofpoint",
        BotReason::EmailScanner("email_scanner:proofpoint"),
    ),
    (
        "urldefense",
        BotReason::EmailScanner("email_scanner:proofpoint"),
    ),
    (
        "mimecast",
        BotReason::EmailScanner("email_scanner:mimecast"),
    ),
    (
        "barracuda",
        BotReason::EmailScanner("email_scanner:barracuda"),
    ),
    (
        "cudasvc",
        BotReason::EmailScanner("email_scanner:barracuda"),
    ),
];

/// Fragments the `isbot` list treats as bots but which are people using an
/// app's built-in browser (or a browser's own name).
const HUMAN_PATTERNS_TO_DROP: &[&str] = &[];

/// Distinct user agents remembered; past this the cache starts over.
const CACHE_CAPACITY: usize = 50_000;
/// User agents longer than this are not cached (and are judged anew).
const CACHE_MAX_UA: usize = 512;

/// Classifies user agents, with a bounded cache.
#[derive(Debug)]
pub struct BotDetector {
    crawlers: isbot::Bots,
    cache: DashMap<Box<str>, Option<BotReason>, foldhash::fast::RandomState>,
}

impl Default for BotDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl BotDetector {
    pub fn new() -> BotDetector {
        let mut crawlers = isbot::Bots::default();
        crawlers.remove(HUMAN_PATTERNS_TO_DROP);
        BotDetector {
            crawlers,
            cache: DashMap::default(),
        }
    }

    /// Judges a user agent without the cache.
    pub fn judge(&self, user_agent: &str) -> Option<BotReason> {
        let ua = user_agent.trim();
        if ua.is_empty() {
            return Some(BotReason::NoUserAgent);
        }
        let lower = ua.to_ascii_lowercase();
        if let Some((_, reason)) = NAMED.iter().find(|(fragment, _)| lower.contains(fragment)) {
            return Some(*reason);
        }
        self.crawlers.is_bot(&lower).then_some(BotReason::Crawler)
    }

    /// Judges a user agent, remembering the answer.
    pub fn user_agent(&self, user_agent: &str) -> Option<BotReason> {
        if user_agent.len() > CACHE_MAX_UA {
            return self.judge(user_agent);
        }
        if let Some(hit) = self.cache.get(user_agent) {
            return *hit;
        }
        let verdict = self.judge(user_agent);
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(user_agent.into(), verdict);
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real user agents of people's browsers, including in-app browsers.
    const HUMANS: &[&str] = &[
        // Chrome on Windows, macOS, Android
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        // Safari on iOS and macOS
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        // Firefox
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        // Edge
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        // In-app browsers: LinkedIn, Facebook, Instagram, X, Slack's and Teams' webviews
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.30.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/475.0.0.36.109;FBBV/123;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 Instagram 357.0.0.40.92 Android",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.62",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0 Teams/24295.605.3225.8804/49",
        "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    ];

    /// Real user agents of preview fetchers and scanners, with the reason expected.
    const MACHINES: &[(&str, &str)] = &[
        (
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "link_preview:slack",
        ),
        (
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            "link_preview:linkedin",
        ),
        ("Twitterbot/1.0", "link_preview:x"),
        (
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "link_preview:facebook",
        ),
        ("WhatsApp/2.23.20.0 A", "link_preview:whatsapp"),
        (
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "link_preview:discord",
        ),
        ("TelegramBot (like TwitterBot)", "link_preview:telegram"),
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
            "link_preview:teams",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b",
            "email_scanner:microsoft",
        ),
        ("Proofpoint URL Defense", "email_scanner:proofpoint"),
        (
            "Mozilla/5.0 (compatible; Mimecast URL Protect)",
            "email_scanner:mimecast",
        ),
        ("Barracuda Sentinel (EE)", "email_scanner:barracuda"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "crawler"),
        ("curl/8.5.0", "crawler"),
        ("python-requests/2.32.3", "crawler"),
        ("Go-http-client/1.1", "crawler"),
        (
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "crawler",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
            "crawler",
        ),
        ("", "no_user_agent"),
    ];

    #[test]
    fn people_are_people() {
        let d = BotDetector::new();
        for ua in HUMANS {
            assert_eq!(d.user_agent(ua), None, "{ua}");
        }
    }

    #[test]
    fn machines_are_named() {
        let d = BotDetector::new();
        for (ua, reason) in MACHINES {
            assert_eq!(
                d.user_agent(ua).map(BotReason::as_str),
                Some(*reason),
                "{ua}"
            );
        }
    }

    #[test]
    fn the_cache_gives_the_same_answers_and_stays_bounded() {
        let d = BotDetector::new();
        for _ in 0..2 {
            assert_eq!(d.user_agent("curl/8.5.0"), Some(BotReason::Crawler));
            assert_eq!(d.user_agent(HUMANS[0]), None);
        }
        for i in 0..(CACHE_CAPACITY + 10) {
            d.user_agent(&format!("Mozilla/5.0 test/{i}"));
        }
        assert!(d.cache.len() <= CACHE_CAPACITY);
    }
}
