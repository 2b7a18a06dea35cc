//! The channel a click came through: named by the link's reserved query
//! parameter (`attribution.channel_param`, consumed and never forwarded),
//! else inferred from the `Referer`. The request path only reads the
//! parameter (`from_value`, its value found by the `Location`'s walk of the
//! query); the writer infers from the `Referer`
//! (`of_click`), off the response path.

use serde::Serialize;

/// Where a share was seen. The list is closed: a parameter value outside it
/// is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Linkedin,
    X,
    Facebook,
    Instagram,
    Whatsapp,
    Slack,
    Teams,
    Email,
    Sms,
    Qr,
    Print,
    Event,
    Web,
    Direct,
    Other,
}

/// How the channel was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelSource {
    /// The link's channel parameter.
    Param,
    /// The `Referer` header.
    Referer,
    /// Neither: the click is `direct`.
    None,
}

impl Channel {
    pub const ALL: [Channel; 15] = [
        Channel::Linkedin,
        Channel::X,
        Channel::Facebook,
        Channel::Instagram,
        Channel::Whatsapp,
        Channel::Slack,
        Channel::Teams,
        Channel::Email,
        Channel::Sms,
        Channel::Qr,
        Channel::Print,
        Channel::Event,
        Channel::Web,
        Channel::Direct,
        Channel::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Linkedin => "linkedin",
            Channel::X => "x",
            Channel::Facebook => "facebook",
            Channel::Instagram => "instagram",
            Channel::Whatsapp => "whatsapp",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Qr => "qr",
            Channel::Print => "print",
            Channel::Event => "event",
            Channel::Web => "web",
            Channel::Direct => "direct",
            Channel::Other => "other",
        }
    }

    /// The channel a name stands for, ignoring ASCII case; `None` outside
    /// the list.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }
}

impl ChannelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelSource::Param => "param",
            ChannelSource::Referer => "referer",
            ChannelSource::None => "none",
        }
    }
}

/// The channel a parameter's raw value names (percent-decoded, ASCII case
/// ignored); a value outside the list is `Other`.
pub fn from_value(raw: &str) -> Channel {
    Channel::parse(&crate::percent::decode(raw)).unwrap_or(Channel::Other)
}

/// A click's channel: the parameter's when it named one, else the
/// `Referer`'s, else `direct`.
pub fn of_click(param: Option<Channel>, referer: Option<&str>) -> (Channel, ChannelSource) {
    match (param, referer) {
        (Some(channel), _) => (channel, ChannelSource::Param),
        (None, Some(referer)) => (from_referer(referer), ChannelSource::Referer),
        (None, None) => (Channel::Direct, ChannelSource::None),
    }
}

/// Hosts whose pages send their visitors with a `Referer`, each with every
/// subdomain (`l.facebook.com`, `www.linkedin.com`). A host not here is
/// `web`.
pub const REFERER_HOSTS: &[(&str, Channel)] = &[
    ("linkedin.com", Channel::Linkedin),
    ("lnkd.in", Channel::Linkedin),
    ("x.com", Channel::X),
    ("twitter.com", Channel::X),
    ("t.co", Channel::X),
    ("facebook.com", Channel::Facebook),
    ("fb.com", Channel::Facebook),
    ("fb.me", Channel::Facebook),
    ("messenger.com", Channel::Facebook),
    ("instagram.com", Channel::Instagram),
    ("whatsapp.com", Channel::Whatsapp),
    ("whatsapp.net", Channel::Whatsapp),
    ("wa.me", Channel::Whatsapp),
    ("slack.com", Channel::Slack),
    ("slack-redir.net", Channel::Slack),
    ("teams.microsoft.com", Channel::Teams),
    ("teams.live.com", Channel::Teams),
    ("teams.cloud.microsoft", Channel::Teams),
    ("mail.google.com", Channel::Email),
    ("outlook.live.com", Channel::Email),
    ("outlook.office.com", Channel::Email),
    ("outlook.office365.com", Channel::Email),
    ("outlook.cloud.microsoft", Channel::Email),
    ("mail.yahoo.com", Channel::Email),
    ("mail.aol.com", Channel::Email),
    ("mail.proton.me", Channel::Email),
    ("mail.zoho.com", Channel::Email),
    ("mail.zoho.eu", Channel::Email),
    ("icloud.com", Channel::Email),
    ("fastmail.com", Channel::Email),
    ("mail.yandex.ru", Channel::Email),
    ("e.mail.ru", Channel::Email),
    ("gmx.net", Channel::Email),
    ("gmx.com", Channel::Email),
    ("app.tuta.com", Channel::Email),
];

/// Android apps send `android-app://<package>/` as their `Referer`.
pub const ANDROID_APPS: &[(&str, Channel)] = &[
    ("com.linkedin.android", Channel::Linkedin),
    ("com.twitter.android", Channel::X),
    ("com.facebook.katana", Channel::Facebook),
    ("com.facebook.orca", Channel::Facebook),
    ("com.instagram.android", Channel::Instagram),
    ("com.whatsapp", Channel::Whatsapp),
    ("com.whatsapp.w4b", Channel::Whatsapp),
    ("com.slack", Channel::Slack),
    ("com.microsoft.teams", Channel::Teams),
    ("com.google.android.gm", Channel::Email),
    ("com.microsoft.office.outlook", Channel::Email),
    ("com.yahoo.mobile.client.android.mail", Channel::Email),
    ("ch.protonmail.android", Channel::Email),
    ("com.google.android.apps.messaging", Channel::Sms),
    ("com.samsung.android.messaging", Channel::Sms),
];

/// The channel a `Referer` names: a known host or app, else `web` for any
/// other host, `other` for a value without one. The host's last three and
/// last two labels are looked up (`www.linkedin.com`, `linkedin.com`), one
/// hash lookup each.
pub fn from_referer(referer: &str) -> Channel {
    // Plain byte loops: the strings are a few dozen bytes, shorter than
    // what `memchr` needs to pay for its set-up.
    let find = |s: &[u8], b: u8| s.iter().position(|&c| c == b);
    let rfind = |s: &[u8], b: u8| s.iter().rposition(|&c| c == b);
    let Some(colon) = find(referer.as_bytes(), b':') else {
        return Channel::Other;
    };
    let (scheme, rest) = (&referer[..colon], &referer[colon + 1..]);
    let Some(rest) = rest.strip_prefix("//") else {
        return Channel::Other;
    };
    let end = rest.bytes().position(|c| matches!(c, b'/' | b'?' | b'#'));
    let authority = &rest[..end.unwrap_or(rest.len())];
    let host = &authority[rfind(authority.as_bytes(), b'@').map_or(0, |at| at + 1)..];
    let host = &host[..find(host.as_bytes(), b':').unwrap_or(host.len())];
    let host = crate::hostname::without_root_dot(host);
    if host.is_empty() {
        return Channel::Other;
    }
    let host: std::borrow::Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        host.to_ascii_lowercase().into()
    } else {
        host.into()
    };
    let table = if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") {
        &lookup().hosts
    } else if scheme.eq_ignore_ascii_case("android-app") {
        return lookup().apps.get(&*host).copied().unwrap_or(Channel::Other);
    } else {
        return Channel::Other;
    };
    // The table's names have two or three labels: the host's last three,
    // then its last two, are looked up.
    let bytes = host.as_bytes();
    let Some(last_dot) = rfind(bytes, b'.') else {
        return Channel::Web;
    };
    let second_dot = rfind(&bytes[..last_dot], b'.');
    if let Some(second) = second_dot {
        let three = rfind(&bytes[..second], b'.').map_or(&*host, |d| &host[d + 1..]);
        if let Some(channel) = table.get(three) {
            return *channel;
        }
    }
    let two = second_dot.map_or(&*host, |d| &host[d + 1..]);
    table.get(two).copied().unwrap_or(Channel::Web)
}

type Table = std::collections::HashMap<&'static str, Channel, foldhash::fast::FixedState>;

/// The two tables above as hash maps, built once.
struct Lookup {
    hosts: Table,
    apps: Table,
}

fn lookup() -> &'static Lookup {
    static LOOKUP: std::sync::OnceLock<Lookup> = std::sync::OnceLock::new();
    LOOKUP.get_or_init(|| Lookup {
        hosts: REFERER_HOSTS.iter().copied().collect(),
        apps: ANDROID_APPS
            .iter()
            .map(|(package, channel)| (*package, *channel))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referer_host_names_its_channel_with_its_subdomains() {
        for (host, channel) in REFERER_HOSTS {
            for referer in [
                format!("https://{host}/"),
                format!("https://www.{host}/feed?x=1"),
                format!("http://{}:443/path", host.to_ascii_uppercase()),
                format!("https://user@l.{host}./"),
            ] {
                assert_eq!(from_referer(&referer), *channel, "{referer}");
            }
        }
    }

    #[test]
    fn every_referer_host_has_the_two_or_three_labels_the_lookup_tries() {
        for (host, _) in REFERER_HOSTS {
            assert!((2..=3).contains(&host.split('.').count()), "{host}");
        }
    }

    #[test]
    fn every_android_app_names_its_channel() {
        for (package, channel) in ANDROID_APPS {
            assert_eq!(
                from_referer(&format!("android-app://{package}/")),
                *channel,
                "{package}"
            );
            assert_eq!(
                from_referer(&format!("android-app://{package}")),
                *channel,
                "{package}"
            );
        }
        assert_eq!(
            from_referer("android-app://com.example.reader/"),
            Channel::Other
        );
    }

    #[test]
    fn lookalike_hosts_are_only_web() {
        for referer in [
            "https://evillinkedin.com/",
            "https://linkedin.com.evil.example/",
            "https://notx.com/",
            "https://t.co.example/",
            "https://mail.google.com.example/",
            "https://blog.brand.example/post",
            "https://a.b.c.d.example.com/",
            "https://localhost:8080/",
        ] {
            assert_eq!(from_referer(referer), Channel::Web, "{referer}");
        }
    }

    #[test]
    fn a_referer_without_a_web_host_is_other() {
        for referer in [
            "",
            "linkedin.com",
            "https:///x",
            "ftp://linkedin.com/",
            "about:blank",
        ] {
            assert_eq!(from_referer(referer), Channel::Other, "{referer:?}");
        }
    }

    #[test]
    fn the_parameter_comes_first_then_the_referer_then_direct() {
        let slack = Some("https://app.slack.com/client");
        assert_eq!(
            of_click(Some(Channel::Qr), slack),
            (Channel::Qr, ChannelSource::Param)
        );
        assert_eq!(
            of_click(None, slack),
            (Channel::Slack, ChannelSource::Referer)
        );
        assert_eq!(of_click(None, None), (Channel::Direct, ChannelSource::None));
    }

    #[test]
    fn a_parameter_value_is_decoded_and_bounded_to_the_list() {
        assert_eq!(from_value("qr"), Channel::Qr);
        assert_eq!(from_value("LinkedIn"), Channel::Linkedin);
        assert_eq!(from_value("%65mail"), Channel::Email);
        assert_eq!(from_value("billboard"), Channel::Other);
        assert_eq!(from_value(""), Channel::Other);
        for channel in Channel::ALL {
            assert_eq!(from_value(channel.as_str()), channel);
        }
    }
}
