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
//!
//! Both speak the buyer's language ([`locale`]): the server fills the words
//! in, and their scripts write amounts, dates and phones the same way.

pub mod locale;

pub use locale::Locale;

/// A static file: its path under `/assets/`, content type and bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The viewer page's HTML template (the same for every stream; the script
/// reads the stream id from the address).
const WATCH_HTML: &str = include_str!("../assets/watch.html");

/// The checkout page of a session (`/checkout/<session id>`).
const CHECKOUT_HTML: &str = include_str!("../assets/checkout.html");

/// The page running YooKassa's embedded form (`/yookassa/confirm/<attempt>`).
const YOOKASSA_HTML: &str = include_str!("../assets/yookassa.html");

/// The viewer page in `locale`.
pub fn watch_page(locale: Locale) -> String {
    locale.page(WATCH_HTML, &["watch."])
}

/// The checkout page in `locale`.
pub fn checkout_page(locale: Locale) -> String {
    locale.page(CHECKOUT_HTML, &["checkout."])
}

/// YooKassa's page in `locale`; `__RETURN__` is to be replaced by the
/// (HTML-escaped) checkout address.
pub fn yookassa_page(locale: Locale) -> String {
    locale.page(YOOKASSA_HTML, &["yookassa."])
}

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
        name: "realtime.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/realtime.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/i18n.js"),
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

    /// Every key a page or a script names is in the catalog: `{{key}}` in
    /// the pages, `t('key'` and `` t(`prefix.${…}`) `` in the scripts.
    #[test]
    fn every_word_a_page_uses_is_in_every_language() {
        let known = |key: &str| locale::ALL.iter().all(|l| !l.text(key).is_empty());
        for page in [WATCH_HTML, CHECKOUT_HTML, YOOKASSA_HTML] {
            for part in page.split("{{").skip(1) {
                let key = part.split("}}").next().unwrap();
                assert!(key == "lang" || key == "text" || known(key), "{key}");
            }
            assert!(page.contains("<html lang=\"{{lang}}\">"));
        }
        // What follows each call of `t` (not of `split` or `sort`).
        let calls = |body: &'static str, open: &'static str| {
            body.match_indices(open).filter_map(move |(i, _)| {
                let before = body[..i].chars().next_back();
                (!before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')).then(|| &body[i + open.len()..])
            })
        };
        let mut used = 0;
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for part in calls(a.body, "t('") {
                let key = part.split('\'').next().unwrap();
                assert!(known(key), "{}: {key}", a.name);
                used += 1;
            }
            for part in calls(a.body, "t(`") {
                let prefix = part.split("${").next().unwrap();
                assert!(prefix.ends_with('.'), "{}: {prefix}", a.name);
                let en = Locale::En.page("{{text}}", &[prefix]);
                assert!(en.len() > 2, "{}: nothing under {prefix}", a.name);
                used += 1;
            }
        }
        assert!(used > 40, "{used}");
        // Each page is filled: no key is left for the browser to see.
        for l in locale::ALL {
            for page in [watch_page(*l), checkout_page(*l), yookassa_page(*l)] {
                assert!(!page.contains("{{"), "{page}");
                assert!(page.contains(&format!("<html lang=\"{l}\">")));
            }
        }
    }
}
