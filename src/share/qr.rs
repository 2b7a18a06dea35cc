//! QR codes of a link's public URL for print (README: "Sharing"): the
//! image parameters and their bounds, the SVG and PNG renderings (the
//! `qrcodegen` crate makes the modules, the `png` crate encodes), and the
//! cacheable answer both the public listeners and the admin API send.
//! An image is not a click: nothing here records an event.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use qrcodegen::{QrCode, QrCodeEcc, QrSegment, Version};
use sha2::{Digest, Sha256};

use super::channel::Channel;
use crate::reply::Reply;

/// The two formats, by the path's last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format a path ends with (`…/qr.svg`, `…/qr.png`), and the path
    /// before it.
    pub fn split_path(path: &str) -> Option<(&str, Format)> {
        if let Some(code) = path.strip_suffix("/qr.svg") {
            Some((code, Format::Svg))
        } else {
            path.strip_suffix("/qr.png").map(|code| (code, Format::Png))
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Svg => "image/svg+xml",
            Format::Png => "image/png",
        }
    }
}

pub const SIZE_PX: std::ops::RangeInclusive<u32> = 128..=2048;
pub const MARGIN_MODULES: std::ops::RangeInclusive<u32> = 0..=16;

/// What an image request may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrParams {
    /// Width and height in pixels (the SVG's own size; it scales).
    pub size: u32,
    /// Quiet zone around the code, in modules.
    pub margin: u32,
    pub ecc: QrCodeEcc,
    /// The channel the code's URL names.
    pub channel: Channel,
}

impl Default for QrParams {
    fn default() -> Self {
        QrParams {
            size: 512,
            margin: 4,
            ecc: QrCodeEcc::Medium,
            channel: Channel::Qr,
        }
    }
}

impl QrParams {
    /// Reads `size`, `margin`, `ecc` and `channel` from a query (the first
    /// of each; other names are left to the caller), refusing a value out
    /// of bounds with the parameter's name and the rule.
    pub fn parse(query: Option<&str>) -> Result<QrParams, String> {
        let mut params = QrParams::default();
        let mut seen = [false; 4];
        for (name, value) in pairs(query) {
            let slot = match name.as_ref() {
                "size" => 0,
                "margin" => 1,
                "ecc" => 2,
                "channel" => 3,
                _ => continue,
            };
            if std::mem::replace(&mut seen[slot], true) {
                continue;
            }
            match slot {
                0 => params.size = bounded("size", &value, &SIZE_PX)?,
                1 => params.margin = bounded("margin", &value, &MARGIN_MODULES)?,
                2 => {
                    params.ecc = match value.as_ref() {
                        "L" | "l" => QrCodeEcc::Low,
                        "M" | "m" => QrCodeEcc::Medium,
                        "Q" | "q" => QrCodeEcc::Quartile,
                        "H" | "h" => QrCodeEcc::High,
                        _ => return Err("ecc: must be L, M, Q or H".into()),
                    }
                }
                _ => {
                    params.channel = Channel::parse(&value).ok_or_else(|| {
                        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                        format!("channel: must be one of {}", names.join(", "))
                    })?
                }
            }
        }
        Ok(params)
    }
}

/// A query's `name=value` pairs, both percent-decoded.
pub fn pairs(
    query: Option<&str>,
) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (crate::percent::decode(name), crate::percent::decode(value))
        })
}

fn bounded(name: &str, value: &str, range: &std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{name}: must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

/// The URL a code encodes: `<origin>/<code>?<channel_param>=<channel>`,
/// `origin` being `scheme://host[:port]`.
pub fn public_url(origin: &str, code: &str, channel_param: &str, channel: Channel) -> String {
    format!("{origin}/{code}?{channel_param}={}", channel.as_str())
}

/// The modules of `url`'s code: `width` rows of `width`, true = dark.
struct Modules {
    width: usize,
    dark: Vec<bool>,
}

impl Modules {
    fn of(url: &str, ecc: QrCodeEcc) -> Result<Modules, String> {
        // The level asked for, not a higher one that would fit (`boostecl`).
        let segments = QrSegment::make_segments(url);
        let code = QrCode::encode_segments_advanced(
            &segments,
            ecc,
            Version::MIN,
            Version::MAX,
            None,
            false,
        )
        .map_err(|e| format!("the URL does not fit a QR code: {e}"))?;
        let width = code.size() as usize;
        let dark = (0..width * width)
            .map(|i| code.get_module((i % width) as i32, (i / width) as i32))
            .collect();
        Ok(Modules { width, dark })
    }

    fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }
}

/// `url` as an SVG of `params.size` pixels: one path of the dark modules'
/// runs, row by row, over a white square (the quiet zone included).
pub fn svg(url: &str, params: &QrParams) -> Result<Vec<u8>, String> {
    let m = Modules::of(url, params.ecc)?;
    let margin = params.margin as usize;
    let total = m.width + 2 * margin;
    let mut path = String::with_capacity(m.width * m.width * 3);
    for y in 0..m.width {
        let mut x = 0;
        while x < m.width {
            if !m.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < m.width && m.is_dark(x, y) {
                x += 1;
            }
            let run = x - start;
            let _ = write!(path, "M{} {}h{run}v1h-{run}z", start + margin, y + margin);
        }
    }
    let size = params.size;
    Ok(format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" ",
            "viewBox=\"0 0 {total} {total}\" shape-rendering=\"crispEdges\">",
            "<rect width=\"{total}\" height=\"{total}\" fill=\"#fff\"/>",
            "<path fill=\"#000\" d=\"{path}\"/></svg>\n"
        ),
        size = size,
        total = total,
        path = path
    )
    .into_bytes())
}

/// `url` as a 1-bit grey PNG of exactly `params.size` pixels: whole pixels
/// per module, the code centred, what the division leaves added to the
/// quiet zone. Refused when the code and its margin do not fit.
pub fn png(url: &str, params: &QrParams) -> Result<Vec<u8>, String> {
    let m = Modules::of(url, params.ecc)?;
    let total = m.width + 2 * params.margin as usize;
    let size = params.size as usize;
    let scale = size / total;
    if scale == 0 {
        return Err(format!(
            "size: {size} pixels are too few for this code ({total} modules with its margin)"
        ));
    }
    let offset = (size - scale * m.width) / 2;
    let row_bytes = size.div_ceil(8);
    // 1 is white in a grey image: start all white, clear the dark pixels.
    let mut pixels = vec![0xffu8; row_bytes * size];
    for y in 0..m.width {
        for x in (0..m.width).filter(|&x| m.is_dark(x, y)) {
            for py in offset + y * scale..offset + (y + 1) * scale {
                let row = &mut pixels[py * row_bytes..(py + 1) * row_bytes];
                for px in offset + x * scale..offset + (x + 1) * scale {
                    row[px / 8] &= !(0x80 >> (px % 8));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, size as u32, size as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// A strong validator of the image these inputs give: the same URL and
/// parameters always render the same bytes (the render's own version is
/// part of it).
fn etag(url: &str, params: &QrParams, format: Format) -> HeaderValue {
    let mut hash = Sha256::new();
    hash.update(b"refedge-qr-1\0");
    hash.update(url.as_bytes());
    hash.update(
        format!(
            "\0{}\0{}\0{:?}\0{:?}",
            params.size, params.margin, params.ecc, format
        )
        .as_bytes(),
    );
    let digest = hash.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `If-None-Match` names this tag (or `*`); weak tags compare by value.
fn not_modified(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let tag = tag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|t| t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == tag)
}

/// How long an image may be kept: it names only the code's URL, which does
/// not change (a disabled link answers its scan, not its image).
const CACHE: HeaderValue = HeaderValue::from_static("public, max-age=86400");

/// An image to draw: cheap to make, a few hundred microseconds to run, so
/// the public listeners run it off the thread that serves their clicks.
#[derive(Debug, Clone)]
pub struct Drawing {
    url: String,
    params: QrParams,
    format: Format,
    tag: HeaderValue,
}

/// What an image request gets: an answer at once (304), or a drawing.
#[derive(Debug)]
pub enum Image {
    Ready(Response<Full<Bytes>>),
    Draw(Box<Drawing>),
}

/// 304 when the client holds the image already (its `If-None-Match`), else
/// the drawing to make.
pub fn answer(url: &str, params: &QrParams, format: Format, request: &HeaderMap) -> Image {
    let tag = etag(url, params, format);
    if not_modified(request, &tag) {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return Image::Ready(cacheable(res, tag));
    }
    Image::Draw(Box::new(Drawing {
        url: url.to_owned(),
        params: *params,
        format,
        tag,
    }))
}

impl Drawing {
    /// The image, or 400 when it cannot be drawn as asked.
    pub fn draw(self) -> Response<Full<Bytes>> {
        let image = match self.format {
            Format::Svg => svg(&self.url, &self.params),
            Format::Png => png(&self.url, &self.params),
        };
        match image {
            Ok(bytes) => {
                let mut res = Response::new(Full::new(Bytes::from(bytes)));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.format.content_type()),
                );
                cacheable(res, self.tag)
            }
            Err(reason) => bad_parameter(&reason),
        }
    }
}

/// `answer`, drawn here and now (the admin API's print runs).
pub fn respond(
    url: &str,
    params: &QrParams,
    format: Format,
    request: &HeaderMap,
) -> Response<Full<Bytes>> {
    match answer(url, params, format, request) {
        Image::Ready(res) => res,
        Image::Draw(drawing) => drawing.draw(),
    }
}

fn cacheable(mut res: Response<Full<Bytes>>, tag: HeaderValue) -> Response<Full<Bytes>> {
    let h = res.headers_mut();
    h.insert(header::ETAG, tag);
    h.insert(header::CACHE_CONTROL, CACHE);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// 400 naming the parameter and its rule.
pub fn bad_parameter(reason: &str) -> Response<Full<Bytes>> {
    Reply::text(StatusCode::BAD_REQUEST, format!("bad request: {reason}\n")).done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_have_defaults_and_bounds() {
        assert_eq!(QrParams::parse(None), Ok(QrParams::default()));
        let p = QrParams::parse(Some("size=1024&margin=0&ecc=h&channel=print&x=1")).unwrap();
        assert_eq!(
            (p.size, p.margin, p.ecc, p.channel),
            (1024, 0, QrCodeEcc::High, Channel::Print)
        );
        for (query, field) in [
            ("size=127", "size"),
            ("size=2049", "size"),
            ("size=big", "size"),
            ("size=", "size"),
            ("margin=17", "margin"),
            ("margin=-1", "margin"),
            ("ecc=X", "ecc"),
            ("channel=billboard", "channel"),
        ] {
            let err = QrParams::parse(Some(query)).unwrap_err();
            assert!(err.starts_with(&format!("{field}:")), "{query}: {err}");
        }
    }

    #[test]
    fn the_png_is_the_size_asked_or_refused_when_the_code_cannot_fit() {
        let url = public_url("https://go.brand.example", "Ab3xK9q", "rf_ch", Channel::Qr);
        let params = QrParams {
            size: 128,
            margin: 16,
            ecc: QrCodeEcc::High,
            ..QrParams::default()
        };
        // A 600-byte URL at ECC H needs a code over 128 modules wide: not
        // even one pixel per module fits in 128 pixels.
        let long = format!("{url}&{}", "x".repeat(600));
        assert!(png(&url, &params).is_ok());
        assert!(png(&long, &params).unwrap_err().starts_with("size:"));
        let image = png(&url, &QrParams::default()).unwrap();
        assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height right after the chunk's length and type.
        assert_eq!(&image[16..24], &[0, 0, 2, 0, 0, 0, 2, 0]);
    }

    /// The README's picture is what the edge draws for its example link.
    #[test]
    fn the_readme_picture_is_the_edges_own_rendering() {
        let url = public_url("https://go.brand.example", "Ab3xK9q", "rf_ch", Channel::Qr);
        let params = QrParams {
            size: 200,
            ..QrParams::default()
        };
        let drawn = svg(&url, &params).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/share/qr-example.svg");
        if std::env::var_os("RF_WRITE_EXAMPLES").is_some() {
            std::fs::write(path, &drawn).unwrap();
        }
        assert!(
            std::fs::read(path).unwrap() == drawn,
            "{path} is stale: RF_WRITE_EXAMPLES=1 cargo test --lib readme_picture"
        );
    }

    #[test]
    fn the_etag_follows_every_input_and_answers_if_none_match() {
        let p = QrParams::default();
        let a = etag("https://a/x?rf_ch=qr", &p, Format::Png);
        assert_eq!(a, etag("https://a/x?rf_ch=qr", &p, Format::Png));
        assert_ne!(a, etag("https://a/x?rf_ch=qr", &p, Format::Svg));
        assert_ne!(a, etag("https://b/x?rf_ch=qr", &p, Format::Png));
        let bigger = QrParams { size: 600, ..p };
        assert_ne!(a, etag("https://a/x?rf_ch=qr", &bigger, Format::Png));
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers, &a));
        let listed = format!("\"other\", W/{}", a.to_str().unwrap());
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&listed).unwrap(),
        );
        assert!(not_modified(&headers, &a));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!not_modified(&headers, &a));
    }
}
