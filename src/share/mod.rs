//! What an advocate shares, seen from the edge: the channel of every click
//! (`channel`), QR codes of a link for print (`qr`), and the page a
//! link-preview fetcher is served from a link's `preview` (`preview_page`).

pub mod channel;
pub mod preview_page;
pub mod qr;
