//! One partition's batch inside its write transaction: clicks into the
//! index (and the conversions that waited for them out), conversions joined
//! or parked, deadlines passed, expiry; each attribution sent, a reversal
//! from what the state remembers of the reversed one (`join::reverse`), any
//! other remembered for its reversals.

use std::collections::BTreeMap;

use super::group::Owned;
use super::index::{self, Remembered, Tables};
use super::join::{self, Attribution, ClickIn, Credit, Prior, Rules, attribute, click_of};
use super::publish::Publisher;
use super::{Gathered, Windows};
use crate::conversions::ConversionEvent;

/// What one batch published, by result.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub results: BTreeMap<&'static str, u64>,
    /// Seconds from each conversion's receipt to its attribution.
    pub delays: Vec<f64>,
    pub duplicates: u64,
    pub indexed: u64,
    pub unreadable: u64,
    /// Attributions per risk flag (`risk::Flag::ALL` order), and held.
    pub risks: [u64; 3],
    pub held: u64,
}

/// The join of one partition's batch inside its write transaction.
pub(super) struct PartitionWork<'a> {
    pub windows: Windows,
    pub rules: &'a Rules,
    pub publisher: &'a Publisher,
    pub tally: &'a mut Tally,
    pub now: u64,
}

impl PartitionWork<'_> {
    pub fn join(
        mut self,
        t: &mut Tables<'_>,
        owned: &Owned,
        part: &Gathered,
        expire: bool,
    ) -> Result<(), index::IndexError> {
        let horizon = self.windows.horizon(self.now);
        let mut packed = Vec::with_capacity(128);
        for (offset, range) in &part.clicks {
            if *offset < t.offsets.clicks_next {
                continue;
            }
            t.offsets.clicks_next = offset + 1;
            let Ok(click) = serde_json::from_slice::<ClickIn<'_>>(&part.buf[range.clone()]) else {
                self.tally.unreadable += 1;
                continue;
            };
            let Some(id) = crate::attribution::ClickId::parse(&click.click_id) else {
                self.tally.unreadable += 1;
                continue;
            };
            if !click.counts() || id.unix_ms() < horizon {
                continue;
            }
            packed.clear();
            click.pack(&mut packed);
            let key = id.as_u128();
            t.insert_click(key, &packed)?;
            self.tally.indexed += 1;
            let waiting = t.take_waiting(key)?;
            if !waiting.is_empty() {
                let credit = click.credit();
                for w in waiting {
                    self.publish_line(t, &w.line, Some(&credit))?;
                }
            }
        }
        for (offset, range) in &part.conversions {
            if *offset < t.offsets.conversions_next {
                continue;
            }
            t.offsets.conversions_next = offset + 1;
            let line = &part.buf[range.clone()];
            let Ok(conversion) = serde_json::from_slice::<ConversionEvent>(line) else {
                self.tally.unreadable += 1;
                continue;
            };
            // Published by an earlier owner: only remembered.
            let replayed = *offset < owned.replay_until;
            if !t.first_time(&conversion.event_id, self.now)? {
                self.tally.duplicates += u64::from(!replayed);
                continue;
            }
            if replayed {
                // Its attribution went out before: a reversal joins it again.
                if conversion.reverses.is_none() {
                    t.remember(&conversion.event_id, &Remembered::Line(line.to_vec()))?;
                }
                continue;
            }
            match click_of(&conversion) {
                Some((id, clicked_ms)) => match t.click(id)? {
                    Some(credit) => {
                        self.publish(t, conversion, Credit::unpack(&credit).as_ref())?;
                    }
                    None if clicked_ms < horizon => self.publish(t, conversion, None)?,
                    None => t.wait(id, *offset as u64, self.now + self.windows.grace_ms, line)?,
                },
                None => self.publish(t, conversion, None)?,
            }
        }
        if owned.rebuild_until.is_none() {
            for (id, w) in t.due(self.now)? {
                let credit = t.click(id)?.and_then(|c| Credit::unpack(&c));
                self.publish_line(t, &w.line, credit.as_ref())?;
            }
        }
        if expire {
            t.expire(horizon)?;
        }
        // Every conversion below this offset is published (or was, by the
        // owner before a rebuild): the next owner starts here.
        let oldest = t
            .oldest_waiting()?
            .map_or(t.offsets.conversions_next, |o| o as i64);
        let committed = oldest.max(owned.replay_until);
        if committed != t.offsets.committed {
            t.offsets.previous = owned.confirmed;
            t.offsets.committed = committed;
        }
        Ok(())
    }

    fn publish_line(
        &mut self,
        t: &mut Tables<'_>,
        line: &[u8],
        credit: Option<&Credit>,
    ) -> Result<(), index::IndexError> {
        match serde_json::from_slice::<ConversionEvent>(line) {
            Ok(conversion) => self.publish(t, conversion, credit)?,
            Err(_) => self.tally.unreadable += 1,
        }
        Ok(())
    }

    /// Joins a conversion (`credit`: its click's, if found) and sends its
    /// attribution: a reversal from what the state remembers of the
    /// reversed one, anything else by `attribute`, then remembered.
    fn publish(
        &mut self,
        t: &mut Tables<'_>,
        conversion: ConversionEvent,
        credit: Option<&Credit>,
    ) -> Result<(), index::IndexError> {
        let received_ms = crate::events::Timestamp::parse_millis(&conversion.received_at);
        let attribution = match conversion.reverses.clone() {
            Some(reversed) => {
                let prior = self.prior(t, &reversed)?;
                join::reverse(conversion, prior.as_ref(), self.now)
            }
            None => {
                let a = attribute(conversion, credit, self.rules, self.now);
                t.remember(
                    &a.conversion.event_id,
                    &Remembered::Prior(Prior::of(&a).pack()),
                )?;
                a
            }
        };
        self.publisher.send(&attribution);
        self.count(&attribution, received_ms);
        Ok(())
    }

    /// What a reversal of `event_id` needs: remembered as it was
    /// published, or joined again from the line an earlier owner published.
    fn prior(&self, t: &Tables<'_>, event_id: &str) -> Result<Option<Prior>, index::IndexError> {
        Ok(match t.remembered(event_id)? {
            None => None,
            Some(Remembered::Prior(bytes)) => Prior::unpack(&bytes),
            Some(Remembered::Line(line)) => {
                let Ok(conversion) = serde_json::from_slice::<ConversionEvent>(&line) else {
                    return Ok(None);
                };
                let credit = match click_of(&conversion) {
                    Some((id, _)) => t.click(id)?.and_then(|c| Credit::unpack(&c)),
                    None => None,
                };
                let again = attribute(conversion, credit.as_ref(), self.rules, self.now);
                Some(Prior::of(&again))
            }
        })
    }

    fn count(&mut self, a: &Attribution, received_ms: u64) {
        self.tally
            .delays
            .push(self.now.saturating_sub(received_ms) as f64 / 1000.0);
        *self.tally.results.entry(a.result()).or_default() += 1;
        for (i, flag) in crate::risk::Flag::ALL.iter().enumerate() {
            self.tally.risks[i] += u64::from(a.risk.has(*flag));
        }
        self.tally.held += u64::from(a.held);
    }
}
