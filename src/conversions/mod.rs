//! Conversions: a signup, a lead, a won deal coming back with the click id
//! the landing page received (or the attribution cookie): the fields a
//! sender posts, checked one by one, and the conversion event the edge
//! spools beside the clicks and ships to `kafka.conversions_topic`; the
//! `matcher` joins them to clicks. Their HTTP handler is `http::intake`.

mod conversion;

pub use conversion::{ConversionEvent, Line, Posted, Received, Refused, Source};
