//! The web app shell (issue 3): one HTML page, one stylesheet, one script and an icon,
//! embedded in the binary so `tiercare serve` needs no files and no internet. Hash routing
//! in the script, so `/` is the only page; everything else the page loads is under `/assets/`.
//!
//! Caching: `index.html` is revalidated on every load (`no-cache`) and names the assets with
//! `?v=<hash of their bytes>`; an asset requested with the current hash is immutable for a
//! year, any other request for it is revalidated. Every answer carries an ETag.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// Everything the page may load comes from this server; no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../web/assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../../web/assets/app.css"),
    },
    Asset {
        name: "results.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../web/assets/results.js"),
    },
    Asset {
        name: "case-payment.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../web/assets/case-payment.js"),
    },
    Asset {
        name: "indicators.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../web/assets/indicators.js"),
    },
    Asset { name: "icon.svg", content_type: "image/svg+xml", bytes: include_bytes!("../../../web/assets/icon.svg") },
];

const INDEX_TEMPLATE: &str = include_str!("../../../web/index.html");

/// FNV-1a, 64 bits: enough to tell one build's assets from another's.
fn fnv(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The version the page names its assets with.
static VERSION: LazyLock<String> = LazyLock::new(|| fnv(&ASSETS.iter().map(|a| a.bytes).collect::<Vec<_>>()));

static INDEX: LazyLock<String> = LazyLock::new(|| INDEX_TEMPLATE.replace("__VERSION__", &VERSION));

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/index.html", get(index)).route("/assets/{name}", get(asset))
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn respond(req: &HeaderMap, content_type: &'static str, cache: &'static str, body: &'static [u8]) -> Response {
    let etag = format!("\"{}\"", fnv(&[body]));
    let fresh = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| {
            let t = t.trim();
            t == etag || t == "*"
        })
    });
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    security_headers(h);
    resp
}

async fn index(req: HeaderMap) -> Response {
    respond(&req, "text/html; charset=utf-8", "no-cache", INDEX.as_bytes())
}

async fn asset(Path(name): Path<String>, RawQuery(query): RawQuery, req: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        let mut resp = crate::ApiError::new(StatusCode::NOT_FOUND, "asset.unknown", "no such asset").into_response();
        security_headers(resp.headers_mut());
        return resp;
    };
    let current = query.as_deref().is_some_and(|q| q.split('&').any(|kv| kv == format!("v={}", *VERSION)));
    let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
    respond(&req, a.content_type, cache, a.bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_names_assets_with_the_current_version() {
        assert!(!super::INDEX.contains("__VERSION__"));
        for a in super::ASSETS.iter().filter(|a| a.name != "icon.svg" || super::INDEX.contains("icon.svg")) {
            let wanted = format!("/assets/{}?v={}", a.name, *super::VERSION);
            assert!(super::INDEX.contains(&wanted), "index.html names {wanted}");
        }
    }
}
