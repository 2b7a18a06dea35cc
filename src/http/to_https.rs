//! The plain listener while TLS is on and `tls.plain_http = "redirect"`: every
//! request goes to the same host and path over HTTPS. No click is counted
//! here; the click is counted once, when the HTTPS request arrives.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;

use crate::metrics;
use crate::reply::Reply;

/// 301 (308 for methods other than GET and HEAD, which must not turn into
/// GET) to `https://host[:port]/path?query`; 400 when the request names no
/// usable host.
pub fn https_redirect<B>(req: &Request<B>, port: Option<u16>) -> Response<Full<Bytes>> {
    let heads = super::heads::Heads::of(req.headers());
    let Some(host) = super::heads::request_host(req, &heads) else {
        metrics::count_request(metrics::RequestOutcome::BadHost);
        return Reply::text(
            StatusCode::BAD_REQUEST,
            "bad request: one valid Host is required\n",
        )
        .done();
    };
    let host = host.to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    if !valid {
        return Reply::text(StatusCode::BAD_REQUEST, "bad request: no valid Host\n").done();
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = match port {
        Some(port) => format!("https://{host}:{port}{path}"),
        None => format!("https://{host}{path}"),
    };
    // The path and query come from hyper's parsed URI (no spaces, CR, LF)
    // and the host was checked above, so this is always a valid value.
    let Ok(location) = HeaderValue::from_str(&location) else {
        return Reply::text(StatusCode::BAD_REQUEST, "bad request\n").done();
    };
    metrics::https_redirects().increment(1);
    let status = if req.method() == Method::GET || req.method() == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::LOCATION, location);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(host: Option<&str>, uri: &str, method: Method, port: Option<u16>) -> (u16, String) {
        let mut b = Request::builder().uri(uri).method(method);
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        let res = https_redirect(&b.body(()).unwrap(), port);
        let loc = res
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (res.status().as_u16(), loc)
    }

    #[test]
    fn same_host_and_path_over_https() {
        assert_eq!(
            redirect(
                Some("go.adp.example:8080"),
                "/Ab3xK9q?utm=x",
                Method::GET,
                None
            ),
            (301, "https://go.adp.example/Ab3xK9q?utm=x".into())
        );
        assert_eq!(
            redirect(Some("go.adp.example"), "/A", Method::HEAD, Some(8443)),
            (301, "https://go.adp.example:8443/A".into())
        );
        assert_eq!(
            redirect(Some("[::1]:80"), "/A", Method::POST, None),
            (308, "https://[::1]/A".into())
        );
    }

    #[test]
    fn a_missing_or_odd_host_is_refused() {
        assert_eq!(redirect(None, "/A", Method::GET, None).0, 400);
        assert_eq!(
            redirect(Some("evil.example/x"), "/A", Method::GET, None).0,
            400
        );
        assert_eq!(redirect(Some("a b"), "/A", Method::GET, None).0, 400);
        let twice = Request::builder()
            .uri("/A")
            .header(header::HOST, "a.example")
            .header(header::HOST, "b.example");
        assert_eq!(https_redirect(&twice.body(()).unwrap(), None).status(), 400);
    }

    #[test]
    fn the_host_is_named_in_lower_case_without_the_root_dot() {
        assert_eq!(
            redirect(Some("LOCALHOST."), "/A", Method::GET, None),
            (301, "https://localhost/A".into())
        );
        assert_eq!(
            redirect(
                Some("Go.Brand.Example.:8080"),
                "/A",
                Method::GET,
                Some(8443)
            ),
            (301, "https://go.brand.example:8443/A".into())
        );
    }
}
