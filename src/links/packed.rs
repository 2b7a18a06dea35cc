//! The compact form links take in the serving map: one shared byte blob per
//! map entry holding one or more packed link records, with campaign and
//! program ids interned (a program has millions of advocates but few
//! campaigns). `LinkRef` reads a record in place; cloning it is one atomic
//! increment, so the request path and the event writer share the bytes.
//!
//! Record layout (integers little-endian):
//! `len:u16 | flags:u8 | redirect:u8 | file_epoch:u8 | [expires_at:i64] | code_len:u8 code |
//! domain_len:u8 domain | target_len:u16 target | advocate_len:u8 advocate |
//! campaign:u32 | program:u32 | tail`
//! — `len` counts the whole record; a
//! length-0 advocate means none; id 0 means none; `file_epoch` is 0 for a link
//! that did not come from the links file, else the load of the file that last
//! set it. These are the link's `hot` fields (`link.rs`). The `tail` holds
//! its `tail` fields that are present, in declaration order, each flagged
//! (the first by `FIRST_TAIL`, each next one by the bit above) and laid out
//! by its kind (`field::Packed`): a link without them costs nothing. A new
//! tail field goes last, so records written before it still read.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use std::borrow::Cow;

use super::PreviewView;
use super::{Link, LinkStatus, LinkView, RedirectStatus};

/// The byte of a record that holds its links-file epoch.
pub const FILE_EPOCH_AT: usize = 4;

const FORWARD_QUERY: u8 = 1;
const DISABLED: u8 = 2;
const HAS_EXPIRY: u8 = 4;
const HAS_ADVOCATE: u8 = 8;
/// The flag of the first tail field (`preview`); the next ones take the
/// bits above it.
const FIRST_TAIL: u8 = 16;
const TAIL_FLAGS: u8 = (((1u32 << LinkView::TAIL_COUNT) - 1) as u8) * FIRST_TAIL;
const _: () = assert!(
    LinkView::TAIL_COUNT <= 4,
    "the flags byte holds four tail fields: widen it for a fifth"
);
/// The flags of `rules` and `variants`, the third and fourth tail fields.
const CHOICE_FLAGS: u8 = FIRST_TAIL << 2 | FIRST_TAIL << 3;
const ALL_FLAGS: u8 = FORWARD_QUERY | DISABLED | HAS_EXPIRY | HAS_ADVOCATE | TAIL_FLAGS;

const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// Interned strings (campaign and program ids): id 0 is "none".
struct Interner {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

fn interner() -> &'static RwLock<Interner> {
    static INTERNER: OnceLock<RwLock<Interner>> = OnceLock::new();
    INTERNER.get_or_init(|| {
        RwLock::new(Interner {
            ids: HashMap::new(),
            names: vec![Arc::from("")],
        })
    })
}

fn intern(s: Option<&str>) -> u32 {
    let Some(s) = s else { return 0 };
    // Campaigns and programs repeat: most lookups hit this thread's cache and
    // never touch the shared lock.
    thread_local! {
        static RECENT: std::cell::RefCell<HashMap<Box<str>, u32>> = std::cell::RefCell::new(HashMap::new());
    }
    if let Some(id) = RECENT.with(|r| r.borrow().get(s).copied()) {
        return id;
    }
    let id = intern_shared(s);
    RECENT.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= 4096 {
            r.clear();
        }
        r.insert(s.into(), id);
    });
    id
}

fn intern_shared(s: &str) -> u32 {
    if let Ok(i) = interner().read()
        && let Some(id) = i.ids.get(s)
    {
        return *id;
    }
    let Ok(mut i) = interner().write() else {
        return 0;
    };
    if let Some(id) = i.ids.get(s) {
        return *id;
    }
    let id = i.names.len() as u32;
    let name: Arc<str> = Arc::from(s);
    i.names.push(Arc::clone(&name));
    i.ids.insert(name, id);
    id
}

fn name_of(id: u32) -> Option<Arc<str>> {
    if id == 0 {
        return None;
    }
    interner()
        .read()
        .ok()
        .and_then(|i| i.names.get(id as usize).cloned())
}

/// `link` as one record in a block of its own size.
pub fn pack(link: &LinkView<'_>, file_epoch: u8) -> Box<[u8]> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        pack_into(link, file_epoch, scratch);
        Box::from(scratch.as_slice())
    })
}

/// Appends `link` as one record to `out`; `file_epoch` as in the layout.
pub fn pack_into(link: &LinkView<'_>, file_epoch: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut flags = 0;
    if link.forward_query {
        flags |= FORWARD_QUERY;
    }
    if link.status == LinkStatus::Disabled {
        flags |= DISABLED;
    }
    if link.expires_at.is_some() {
        flags |= HAS_EXPIRY;
    }
    if link.advocate_id.is_some() {
        flags |= HAS_ADVOCATE;
    }
    let flags_at = out.len();
    out.push(flags);
    out.push(
        REDIRECTS
            .iter()
            .position(|r| *r == link.redirect.as_u16())
            .unwrap_or(1) as u8,
    );
    out.push(file_epoch);
    if let Some(t) = link.expires_at {
        out.extend_from_slice(&t.to_le_bytes());
    }
    // Lengths were validated: code ≤ 64, domain ≤ 253, target ≤ 2048, ids ≤ 128.
    out.push(link.code.len() as u8);
    out.extend_from_slice(link.code.as_bytes());
    let domain = link.domain.as_deref().unwrap_or("");
    out.push(domain.len() as u8);
    out.extend_from_slice(domain.as_bytes());
    out.extend_from_slice(&(link.target.len() as u16).to_le_bytes());
    out.extend_from_slice(link.target.as_bytes());
    let advocate = link.advocate_id.unwrap_or("");
    out.push(advocate.len() as u8);
    out.extend_from_slice(advocate.as_bytes());
    out.extend_from_slice(&intern(link.campaign_id).to_le_bytes());
    out.extend_from_slice(&intern(link.program_id).to_le_bytes());
    out[flags_at] |= link.pack_tail(FIRST_TAIL, out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_le_bytes());
}

/// A copy of the interned names, indexed by id (index 0 is "none").
pub fn interned_names() -> Vec<Arc<str>> {
    interner()
        .read()
        .map(|i| i.names.clone())
        .unwrap_or_default()
}

/// The interned names from id `start` on (the interner only grows, so a
/// reader's copy catches up with this).
pub fn interned_names_from(start: usize) -> Vec<Arc<str>> {
    interner()
        .read()
        .map(|i| i.names.get(start..).unwrap_or_default().to_vec())
        .unwrap_or_default()
}

/// Interns `name` in this process; for ids read from a snapshot.
pub fn intern_name(name: &str) -> u32 {
    if name.is_empty() {
        0
    } else {
        intern(Some(name))
    }
}

/// Checks that `record` (one record, length prefix included) is well formed:
/// every length stays inside it, code and target are valid, the strings are
/// UTF-8. Returns the offset of its campaign/program ids. Used on records
/// read back from a snapshot, so `LinkRef` never reads past a record.
pub fn check_record(record: &[u8]) -> Option<usize> {
    let len = u16::from_le_bytes([*record.first()?, *record.get(1)?]) as usize;
    if len != record.len() || len < 5 {
        return None;
    }
    let flags = record[2];
    // Today every bit is a flag (four tail fields fill the byte); the test
    // stays for when one is given up.
    #[allow(clippy::bad_bit_mask)]
    let unknown_flags = flags & !ALL_FLAGS != 0;
    if unknown_flags || record[3] as usize >= REDIRECTS.len() {
        return None;
    }
    let mut p = 5 + if flags & HAS_EXPIRY != 0 { 8 } else { 0 };
    let mut field = |width: usize| -> Option<&[u8]> {
        let n = match width {
            1 => *record.get(p)? as usize,
            _ => u16::from_le_bytes([*record.get(p)?, *record.get(p + 1)?]) as usize,
        };
        let start = p + width;
        let bytes = record.get(start..start + n)?;
        p = start + n;
        Some(bytes)
    };
    let code = std::str::from_utf8(field(1)?).ok()?;
    let domain = std::str::from_utf8(field(1)?).ok()?;
    let target = std::str::from_utf8(field(2)?).ok()?;
    let advocate = field(1)?;
    std::str::from_utf8(advocate).ok()?;
    let ids = p;
    let mut tail = record.get(ids + 8..)?;
    let view = LinkView::read_tail(flags, FIRST_TAIL, &mut tail)?;
    if !view.rules.is_well_formed() && !view.rules.is_empty()
        || !view.variants.is_well_formed() && !view.variants.is_empty()
    {
        return None;
    }
    // The records were validated when their links were created; this guards
    // against a damaged file, cheaply (no URL parse): the bytes a request
    // would send must still be visible ASCII.
    let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if !super::ShortCode::is_valid(code)
        || !visible(domain)
        || target.is_empty()
        || !visible(target)
        || !tail.is_empty()
    {
        return None;
    }
    Some(ids)
}

/// Rewrites the campaign and program ids of a checked record with `remap`
/// (snapshot id → this process's id). False when an id is unknown.
pub fn remap_ids(record: &mut [u8], ids_at: usize, remap: &[u32]) -> bool {
    for at in [ids_at, ids_at + 4] {
        let old = u32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
            as usize;
        let Some(new) = remap.get(old) else {
            return false;
        };
        record[at..at + 4].copy_from_slice(&new.to_le_bytes());
    }
    true
}

/// The code and domain of a checked record.
pub fn record_key(record: &[u8]) -> (&str, Option<&str>) {
    let (code, domain) = key_bytes(record);
    let code = std::str::from_utf8(code).unwrap_or("");
    let domain = std::str::from_utf8(domain).unwrap_or("");
    (code, (!domain.is_empty()).then_some(domain))
}

/// The code and domain bytes of a checked record (domain empty: every
/// host), read without the fields after them: what a lookup compares.
#[inline]
pub fn key_bytes(record: &[u8]) -> (&[u8], &[u8]) {
    let (code, domain) = key_spans(record);
    (
        &record[code.0..code.0 + code.1],
        &record[domain.0..domain.0 + domain.1],
    )
}

/// (offset, length) of a record's code and of its domain.
#[inline]
fn key_spans(b: &[u8]) -> ((usize, usize), (usize, usize)) {
    let p = if b[2] & HAS_EXPIRY != 0 { 13 } else { 5 };
    let code = (p + 1, b[p] as usize);
    let d = code.0 + code.1;
    (code, (d + 1, b[d] as usize))
}

/// The records in a blob, as (offset, length).
pub fn records(blob: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + 2 > blob.len() {
            return None;
        }
        let len = u16::from_le_bytes([blob[at], blob[at + 1]]) as usize;
        let item = (at, len);
        at += len.max(2);
        Some(item)
    })
}

fn fields_of(b: &[u8]) -> Fields {
    let (code, domain) = key_spans(b);
    let mut p = domain.0 + domain.1;
    let target_len = u16::from_le_bytes([b[p], b[p + 1]]) as usize;
    let target = (p + 2, target_len);
    p += 2 + target_len;
    let advocate_len = b[p] as usize;
    let advocate = (p + 1, advocate_len);
    p += 1 + advocate_len;
    Fields {
        code,
        domain,
        target,
        advocate,
        ids: p,
    }
}

/// A link in the serving map, read in place.
#[derive(Clone)]
pub struct LinkRef {
    blob: Arc<[u8]>,
    at: u32,
}

impl std::fmt::Debug for LinkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRef")
            .field("code", &self.code())
            .field("domain", &self.domain())
            .finish()
    }
}

/// Offsets of the variable fields inside one record.
struct Fields {
    code: (usize, usize),
    domain: (usize, usize),
    target: (usize, usize),
    advocate: (usize, usize),
    ids: usize,
}

impl LinkRef {
    pub fn new(blob: Arc<[u8]>, at: usize) -> LinkRef {
        LinkRef {
            blob,
            at: at as u32,
        }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.blob[self.at as usize..]
    }

    #[inline]
    fn flags(&self) -> u8 {
        self.bytes()[2]
    }

    fn fields(&self) -> Fields {
        fields_of(self.bytes())
    }

    fn str_at(&self, (at, len): (usize, usize)) -> &str {
        // Only ever written from validated UTF-8 strings.
        crate::sys::text::str_of(&self.bytes()[at..at + len]).unwrap_or("")
    }

    fn id_at(&self, at: usize) -> u32 {
        let b = self.bytes();
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    pub fn code(&self) -> &str {
        self.str_at(self.fields().code)
    }

    pub fn domain(&self) -> Option<&str> {
        let d = self.str_at(self.fields().domain);
        (!d.is_empty()).then_some(d)
    }

    pub fn target(&self) -> &str {
        self.str_at(self.fields().target)
    }

    pub fn advocate_id(&self) -> Option<&str> {
        (self.flags() & HAS_ADVOCATE != 0).then(|| self.str_at(self.fields().advocate))
    }

    pub fn campaign_id(&self) -> Option<Arc<str>> {
        name_of(self.id_at(self.fields().ids))
    }

    pub fn program_id(&self) -> Option<Arc<str>> {
        name_of(self.id_at(self.fields().ids + 4))
    }

    /// The interned ids of the campaign and the program (0: none), for a
    /// reader with its own copy of the names (`interned_names_from`).
    pub fn name_ids(&self) -> (u32, u32) {
        let at = self.fields().ids;
        (self.id_at(at), self.id_at(at + 4))
    }

    /// The tail fields (`LinkView::read_tail`: the hot ones at their
    /// defaults), read in place; one flag test for a link without them.
    pub fn tail(&self) -> LinkView<'_> {
        if self.flags() & TAIL_FLAGS == 0 {
            return LinkView::default();
        }
        let mut tail = &self.bytes()[self.fields().ids + 8..];
        LinkView::read_tail(self.flags(), FIRST_TAIL, &mut tail).unwrap_or_default()
    }

    /// Whether the link has rules or variants (one flag test).
    #[inline]
    pub fn has_choices(&self) -> bool {
        self.flags() & CHOICE_FLAGS != 0
    }

    /// The link's rules and variants; `None` (one flag test) for a link
    /// with neither.
    pub fn choices(&self) -> Option<(super::rules::Rules<'_>, super::variants::Variants<'_>)> {
        if self.flags() & CHOICE_FLAGS == 0 {
            return None;
        }
        let tail = self.tail();
        Some((tail.rules, tail.variants))
    }

    /// The link's preview; `None` for most links (one flag test).
    pub fn preview(&self) -> Option<PreviewView<'_>> {
        self.tail().preview
    }

    /// The advocate's company domain (self-referrals).
    pub fn advocate_domain(&self) -> Option<&str> {
        // Read in place: always borrowed from the record.
        match self.tail().advocate_domain {
            Some(Cow::Borrowed(domain)) => Some(domain),
            _ => None,
        }
    }

    pub fn redirect(&self) -> RedirectStatus {
        let code = REDIRECTS
            .get(self.bytes()[3] as usize)
            .copied()
            .unwrap_or(302);
        RedirectStatus::new(code).unwrap_or(RedirectStatus::FOUND)
    }

    pub fn forward_query(&self) -> bool {
        self.flags() & FORWARD_QUERY != 0
    }

    pub fn status(&self) -> LinkStatus {
        if self.flags() & DISABLED != 0 {
            LinkStatus::Disabled
        } else {
            LinkStatus::Active
        }
    }

    pub fn expires_at(&self) -> Option<i64> {
        (self.flags() & HAS_EXPIRY != 0).then(|| {
            let b = self.bytes();
            let mut t = [0u8; 8];
            t.copy_from_slice(&b[5..13]);
            i64::from_le_bytes(t)
        })
    }

    /// The load of the links file that last set this link; 0 = not from the file.
    pub fn file_epoch(&self) -> u8 {
        self.bytes()[FILE_EPOCH_AT]
    }

    pub fn is_expired(&self, now_unix: i64) -> bool {
        self.expires_at().is_some_and(|t| now_unix >= t)
    }

    /// The link as a validated `Link` again.
    pub fn to_link(&self) -> Option<Link> {
        let (campaign_id, program_id) = (self.campaign_id(), self.program_id());
        let view = LinkView {
            code: self.code(),
            domain: self.domain().map(Cow::Borrowed),
            target: self.target(),
            advocate_id: self.advocate_id(),
            campaign_id: campaign_id.as_deref(),
            program_id: program_id.as_deref(),
            redirect: self.redirect(),
            forward_query: self.forward_query(),
            status: self.status(),
            expires_at: self.expires_at(),
            ..self.tail()
        };
        // Checked again, as any link is made (the instant is kept as read).
        let mut link = Link::from_record(&view.to_record()).ok()?;
        link.expires_at = view.expires_at;
        Some(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips() {
        for json in [
            r#"{"code":"abc","target":"https://a.example/x?y=1#z"}"#,
            r#"{"code":"Ab3xK9q","target":"https://a.example/","domain":"go.a.example","advocate_id":"adv-1","campaign_id":"c1","program_id":"p1","redirect":308,"forward_query":false,"status":"disabled","expires_at":"2030-01-01T00:00:00Z"}"#,
            r#"{"code":"p","target":"https://a.example/","preview":{"title":"Jane \"J\" <Doe> recommends","site_name":"ACME"}}"#,
            r#"{"code":"q","target":"https://a.example/","advocate_id":"a","preview":{"title":"t","description":"d é","image":"https://cdn.example/i.png","image_alt":"alt","site_name":"s"}}"#,
            r#"{"code":"r","target":"https://a.example/","advocate_domain":"Partner.Example","preview":{"title":"t"}}"#,
            r#"{"code":"s","target":"https://a.example/","advocate_domain":"partner.example"}"#,
            r#"{"code":"t","target":"https://a.example/","rules":[{"when":{"os":["ios"]},"target":"https://b.example/"}]}"#,
            r#"{"code":"u","target":"https://a.example/","preview":{"title":"t"},"variants":[{"target":"https://b.example/","weight":40},{"target":"https://c.example/","weight":60}]}"#,
        ] {
            let link = Link::from_json(json).unwrap();
            let mut blob = Vec::new();
            pack_into(&link.view(), 0, &mut blob);
            pack_into(&link.view(), 3, &mut blob);
            let blob: Arc<[u8]> = blob.into();
            let found: Vec<(usize, usize)> = records(&blob).collect();
            assert_eq!(found.len(), 2);
            for (at, _) in found {
                let r = LinkRef::new(Arc::clone(&blob), at);
                assert_eq!(r.to_link().unwrap(), link, "{json}");
                assert_eq!(r.code(), link.code.as_str());
                assert_eq!(r.target(), &*link.target);
                assert_eq!(r.is_expired(1_893_456_000), link.expires_at.is_some());
                assert_eq!(r.preview(), link.preview.as_ref().map(|p| p.view()));
                assert_eq!(r.advocate_domain(), link.advocate_domain.as_deref());
                assert_eq!(
                    r.choices().is_some(),
                    !link.rules.is_empty() || !link.variants.is_empty(),
                    "{json}"
                );
                let len = u16::from_le_bytes([blob[at], blob[at + 1]]) as usize;
                assert!(check_record(&blob[at..at + len]).is_some(), "{json}");
            }
        }
    }

    #[test]
    fn interning_reuses_ids() {
        let a = intern(Some("campaign-x"));
        assert_eq!(intern(Some("campaign-x")), a);
        assert_ne!(intern(Some("campaign-y")), a);
        assert_eq!(intern(None), 0);
        assert_eq!(name_of(a).as_deref(), Some("campaign-x"));
        assert_eq!(name_of(0), None);
    }
}
