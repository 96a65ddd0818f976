//! The browser side of Haul, served by the gateway as it is (no build step).
//!
//! - the viewer page, `/watch/<stream id>`: a reference live-shopping page
//!   (video area, pinned lot, offers with a skew-corrected countdown and units
//!   left, a buy button that reserves over the realtime connection, a
//!   purchase ticker, a reconnecting indicator), speaking the Centrifugo
//!   client protocol itself;
//! - the checkout page, `/checkout/<session id>`: the summary, the seller's
//!   payment methods, the way to the acquirer's page and back, the final
//!   state read from the server and told to the embedding page.

/// A static file: its path under `/assets/`, content type and bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The viewer page's HTML (the same for every stream; the script reads the
/// stream id from the address).
pub const WATCH_HTML: &str = include_str!("../assets/watch.html");

/// The checkout page of a session (`/checkout/<session id>`).
pub const CHECKOUT_HTML: &str = include_str!("../assets/checkout.html");

/// The page running YooKassa's embedded form (`/yookassa/confirm/<attempt>`);
/// `__RETURN__` is replaced by the (HTML-escaped) checkout address.
pub const YOOKASSA_HTML: &str = include_str!("../assets/yookassa.html");

/// The script sellers paste (`/widget.js`).
pub const WIDGET_JS: &str = include_str!("../assets/widget.js");

/// Files under `/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "watch.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/watch.js"),
    },
    Asset {
        name: "checkout.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/checkout.js"),
    },
    Asset {
        name: "yookassa.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/yookassa.js"),
    },
    Asset {
        name: "checkout.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/checkout.css"),
    },
    Asset {
        name: "watch.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/watch.css"),
    },
];

/// The asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refers_only_to_assets_that_exist() {
        for part in [WATCH_HTML, CHECKOUT_HTML, YOOKASSA_HTML]
            .iter()
            .flat_map(|p| p.split("/assets/").skip(1))
        {
            let name = part.split('"').next().unwrap();
            assert!(asset(name).is_some(), "{name} is referenced but not served");
        }
        assert!(asset("../secret").is_none());
    }
}
