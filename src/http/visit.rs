//! What a link's rules ask of a request (`links::Visit`): its query, its
//! preferred language, its device and OS, its country. Each is worked out
//! when a condition first asks and kept for the next rule, so a link
//! without rules costs none of it, and the device and country are looked
//! up at most once a click.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{ACCEPT_LANGUAGE, USER_AGENT};

use crate::attribution::ClickId;
use crate::geo::Geo;
use crate::links::Visit;
use crate::percent;
use crate::visitor::device::{self, Class, Os};
use crate::visitor::language::{self, Language};

use super::query;

/// One request as the rules see it.
#[derive(Debug)]
pub struct RequestVisit<'r> {
    now_ms: u64,
    query: Option<&'r str>,
    headers: &'r HeaderMap,
    client: IpAddr,
    geo: Option<&'r Geo>,
    language: Option<Option<Language>>,
    device: Option<(Option<Class>, Option<Os>)>,
    country: Option<Option<[u8; 2]>>,
    first_click: ClickId,
}

impl<'r> RequestVisit<'r> {
    /// `client` is the address the click event records (trusted proxies
    /// believed); `geo` the databases the event writer reads too;
    /// `first_click` the click id of the visitor's first click (a valid
    /// cookie's), else this click's.
    pub fn new(
        now_ms: u64,
        query: Option<&'r str>,
        headers: &'r HeaderMap,
        client: IpAddr,
        geo: Option<&'r Geo>,
        first_click: ClickId,
    ) -> RequestVisit<'r> {
        RequestVisit {
            now_ms,
            query,
            headers,
            client,
            geo,
            language: None,
            device: None,
            country: None,
            first_click,
        }
    }
}

impl Visit for RequestVisit<'_> {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn has_param(&mut self, name: &str, value: &str) -> bool {
        query::params(self.query.unwrap_or(""))
            .any(|param| *param.name() == *name && *percent::decode(param.raw_value()) == *value)
    }

    fn language(&mut self) -> Option<Language> {
        let headers = self.headers;
        *self.language.get_or_insert_with(|| {
            headers
                .get(ACCEPT_LANGUAGE)
                .and_then(|v| language::preferred(v.as_bytes()))
        })
    }

    fn device(&mut self) -> (Option<Class>, Option<Os>) {
        let headers = self.headers;
        *self.device.get_or_insert_with(|| {
            // The event writer parses the same header with the same parser
            // (`visitor::device`): rule and event agree.
            let parsed = headers
                .get(USER_AGENT)
                .and_then(|ua| std::str::from_utf8(ua.as_bytes()).ok())
                .and_then(device::cached);
            parsed.map_or((None, None), |d| (d.rule_class(), d.os_family()))
        })
    }

    fn first_click(&mut self) -> u128 {
        // Decoded only for a link with variants.
        self.first_click.as_u128()
    }

    fn country(&mut self) -> Option<[u8; 2]> {
        let (geo, client) = (self.geo, self.client);
        *self
            .country
            .get_or_insert_with(|| geo.and_then(|g| g.current().country(client)))
    }
}
