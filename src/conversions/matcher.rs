//! Joining conversions to clicks. For now the offline join over spool
//! segments (`refedge match --spool DIR`).
