//! Conversions: a signup, a lead, a won deal coming back with the click id
//! the landing page received (or the attribution cookie), checked at the
//! edge (`conversion`, `intake`), spooled durably beside the clicks and
//! shipped to `kafka.conversions_topic`; the `matcher` joins them to clicks.

mod conversion;
pub mod intake;

pub use conversion::{ConversionEvent, Line, Posted, Received, Refused, Source};
pub use intake::Intake;
