//! A small HTTP answer, built one way: a status, a content type and a body,
//! then the usual headers by name (`no_store`, `public_page`, `header`).
//! The admin API, the public routes' pages and refusals, QR's refusals,
//! the conversion intake and the redirect to HTTPS all answer with it (a
//! click's redirect and a QR image build their own: each is one fixed set
//! of headers on the hot path or around a drawing).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";
pub const HTML: &str = "text/html; charset=utf-8";

/// Named once: a name given as text is parsed again at every insert.
pub const X_ROBOTS_TAG: HeaderName = HeaderName::from_static("x-robots-tag");

/// An answer being built; `done` gives the response.
#[derive(Debug)]
pub struct Reply(Response<Full<Bytes>>);

impl Reply {
    /// `status` with `body` of `content_type`.
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply::empty(status)
            .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
            .body(body)
    }

    /// `status` with no body and no content type (204, 304, a redirect).
    pub fn empty(status: StatusCode) -> Reply {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = status;
        Reply(res)
    }

    /// Plain UTF-8 text.
    pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
        Reply::new(status, TEXT, body)
    }

    /// A JSON document.
    pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
        Reply::new(status, JSON, value.to_string())
    }

    /// A JSON error: `{"error": "..."}`, not to be cached.
    pub fn json_error(status: StatusCode, message: &str) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": message })).no_store()
    }

    /// 405 with a JSON error and the `Allow` header RFC 9110 §15.5.6
    /// requires.
    pub fn method_not_allowed(allow: &'static str) -> Reply {
        Reply::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            .header(header::ALLOW, HeaderValue::from_static(allow))
    }

    fn body(mut self, body: impl Into<Bytes>) -> Reply {
        *self.0.body_mut() = Full::new(body.into());
        self
    }

    /// Sets (replaces) one header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        self.0.headers_mut().insert(name, value);
        self
    }

    /// `Cache-Control: no-store`: an operator's or a client's answer.
    pub fn no_store(self) -> Reply {
        self.header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
    }

    /// What every answer of the public routes carries: kept out of shared
    /// caches and search indexes (`private, no-store`, `noindex`).
    pub fn public_page(self) -> Reply {
        self.header(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        )
        .header(X_ROBOTS_TAG, HeaderValue::from_static("noindex"))
    }

    pub fn done(self) -> Response<Full<Bytes>> {
        self.0
    }
}

impl From<Reply> for Response<Full<Bytes>> {
    fn from(reply: Reply) -> Self {
        reply.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_lands_in_its_header() {
        let res = Reply::text(StatusCode::NOT_FOUND, "no\n")
            .public_page()
            .done();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let h = res.headers();
        assert_eq!(h[header::CONTENT_TYPE], TEXT);
        assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
        assert_eq!(h[X_ROBOTS_TAG], "noindex");
        let res = Reply::method_not_allowed("GET, HEAD").done();
        let h = res.headers();
        assert_eq!(
            (
                h[header::CONTENT_TYPE].to_str().unwrap(),
                h[header::ALLOW].to_str().unwrap()
            ),
            (JSON, "GET, HEAD")
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let empty = Reply::empty(StatusCode::NO_CONTENT).done();
        assert!(empty.headers().is_empty());
    }
}
