//! Attribution: the click id handed to the landing page, the signed cookie on
//! the short domain, and the first/last-touch policy that decides whether a
//! click takes over the cookie.

mod click_id;
mod cookie;

pub use click_id::{CLICK_ID_LEN, ClickId};
pub use cookie::{CookieCheck, CookieSigner};

use http::HeaderValue;

use crate::config::{AttributionConfig, AttributionModel};

/// What attribution decided for one request.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// The id of this click; `None` for bots.
    pub click_id: Option<ClickId>,
    /// The `Set-Cookie` value to send, if the cookie changes.
    pub set_cookie: Option<HeaderValue>,
    /// This click holds the cookie after the response.
    pub attributed: bool,
    /// The click id of a valid cookie sent with the request.
    pub prior_click_id: Option<ClickId>,
}

/// The attribution policy of one node.
#[derive(Debug, Clone)]
pub struct AttributionPolicy {
    signer: CookieSigner,
    model: AttributionModel,
    /// `; Max-Age=…; Path=/; HttpOnly; SameSite=Lax[; Domain=…]`, built once.
    attributes: String,
}

/// The cookie signing keys: the configured secrets (the first signs, all
/// verify), or one random key for this process when none is set.
pub fn signing_keys(config: &AttributionConfig) -> Vec<Vec<u8>> {
    if config.secret.is_empty() {
        tracing::warn!(
            "attribution.secret is not set: using a random key, so attribution cookies will not survive a restart or verify on other nodes"
        );
        let mut key = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        vec![key]
    } else {
        config
            .secret
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect()
    }
}

impl AttributionPolicy {
    /// Builds the policy; `secrets` are the configured keys, or a random key
    /// when none are configured (the caller warns about that).
    pub fn new(config: &AttributionConfig, secrets: &[Vec<u8>]) -> AttributionPolicy {
        let window_secs = u64::from(config.window_days) * 86_400;
        let mut attributes = format!("; Max-Age={window_secs}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(domain) = &config.cookie_domain {
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        AttributionPolicy {
            signer: CookieSigner::new(&config.cookie_name, secrets, window_secs),
            model: config.model,
            attributes,
        }
    }

    pub fn signer(&self) -> &CookieSigner {
        &self.signer
    }

    /// Decides a click whose event carries `click_id`. `human` is false for
    /// bots (their id is never handed out); `tls` adds `Secure`.
    pub fn decide(
        &self,
        human: bool,
        cookie: CookieCheck,
        click_id: ClickId,
        now_ms: u64,
        tls: bool,
    ) -> Decision {
        let prior_click_id = match cookie {
            CookieCheck::Valid { click_id, .. } => Some(click_id),
            _ => None,
        };
        if !human {
            return Decision {
                click_id: None,
                set_cookie: None,
                attributed: false,
                prior_click_id,
            };
        }
        let keep_existing = self.model == AttributionModel::FirstTouch && prior_click_id.is_some();
        let set_cookie = (!keep_existing).then(|| self.set_cookie(&click_id, now_ms / 1000, tls));
        Decision {
            click_id: Some(click_id),
            attributed: !keep_existing,
            set_cookie,
            prior_click_id,
        }
    }

    fn set_cookie(&self, click_id: &ClickId, now_secs: u64, tls: bool) -> HeaderValue {
        const SECURE: &[u8] = b"; Secure";
        // Exactly the room it takes: the header value keeps the block as
        // it is, with nothing to give back.
        let mut header = Vec::with_capacity(
            self.signer.name().len()
                + 1
                + CookieSigner::value_len(now_secs)
                + self.attributes.len()
                + if tls { SECURE.len() } else { 0 },
        );
        header.extend_from_slice(self.signer.name().as_bytes());
        header.push(b'=');
        self.signer.sign_into(click_id, now_secs, &mut header);
        header.extend_from_slice(self.attributes.as_bytes());
        if tls {
            header.extend_from_slice(SECURE);
        }
        debug_assert_eq!(header.len(), header.capacity());
        // Built only from validated config and base62/base64url characters.
        crate::sys::text::header_value(header).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_800_000_000_000;

    fn policy(model: AttributionModel, domain: Option<&str>) -> AttributionPolicy {
        let config = AttributionConfig {
            model,
            cookie_domain: domain.map(str::to_owned),
            ..AttributionConfig::default()
        };
        AttributionPolicy::new(&config, &[b"0123456789abcdef".to_vec()])
    }

    fn valid_cookie(p: &AttributionPolicy) -> (ClickId, CookieCheck) {
        let id = ClickId::new(NOW_MS - 1000);
        let value = p.signer().sign(&id, NOW_MS / 1000 - 1);
        (id, p.signer().verify(&value, NOW_MS / 1000))
    }

    #[test]
    fn first_click_sets_the_cookie() {
        let p = policy(AttributionModel::FirstTouch, None);
        let d = p.decide(
            true,
            CookieCheck::Absent,
            ClickId::new(NOW_MS),
            NOW_MS,
            false,
        );
        let id = d.click_id.unwrap();
        let cookie = d.set_cookie.unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("rf_ref=1."), "{cookie}");
        assert!(cookie.contains(id.as_str()));
        assert!(
            cookie.ends_with("; Max-Age=7776000; Path=/; HttpOnly; SameSite=Lax"),
            "{cookie}"
        );
        assert!(d.attributed);
        assert_eq!(d.prior_click_id, None);
    }

    #[test]
    fn tls_and_domain_attributes() {
        let p = policy(AttributionModel::FirstTouch, Some(".brand.example"));
        let d = p.decide(
            true,
            CookieCheck::Absent,
            ClickId::new(NOW_MS),
            NOW_MS,
            true,
        );
        let cookie = d.set_cookie.unwrap();
        assert!(
            cookie
                .to_str()
                .unwrap()
                .ends_with("; SameSite=Lax; Domain=.brand.example; Secure")
        );
    }

    #[test]
    fn first_touch_keeps_a_valid_cookie() {
        let p = policy(AttributionModel::FirstTouch, None);
        let (prior, check) = valid_cookie(&p);
        let d = p.decide(true, check, ClickId::new(NOW_MS), NOW_MS, false);
        assert!(d.set_cookie.is_none());
        assert!(!d.attributed);
        assert_eq!(d.prior_click_id, Some(prior));
        assert!(
            d.click_id.is_some(),
            "the landing page still gets this click's id"
        );
    }

    #[test]
    fn last_touch_replaces_the_cookie() {
        let p = policy(AttributionModel::LastTouch, None);
        let (prior, check) = valid_cookie(&p);
        let d = p.decide(true, check, ClickId::new(NOW_MS), NOW_MS, false);
        assert!(d.set_cookie.is_some());
        assert!(d.attributed);
        assert_eq!(d.prior_click_id, Some(prior));
    }

    #[test]
    fn invalid_cookies_are_treated_as_absent() {
        let p = policy(AttributionModel::FirstTouch, None);
        for check in [
            CookieCheck::Malformed,
            CookieCheck::BadSignature,
            CookieCheck::Expired,
        ] {
            let d = p.decide(true, check, ClickId::new(NOW_MS), NOW_MS, false);
            assert!(d.set_cookie.is_some());
            assert!(d.attributed);
            assert_eq!(d.prior_click_id, None);
        }
    }

    #[test]
    fn bots_get_nothing() {
        let p = policy(AttributionModel::LastTouch, None);
        let d = p.decide(
            false,
            CookieCheck::Absent,
            ClickId::new(NOW_MS),
            NOW_MS,
            false,
        );
        assert!(d.click_id.is_none());
        assert!(d.set_cookie.is_none());
        assert!(!d.attributed);
    }
}
