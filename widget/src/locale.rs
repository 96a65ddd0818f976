//! The buyer's language: which one a page speaks, its words, and amounts
//! written the way that language writes them.
//!
//! A page speaks, in order: the language the buyer picked (`?lang=`), the
//! one recorded for the purchase (set by the seller on the session or by
//! the buyer's own checkout page), the best the browser asks for
//! (`Accept-Language`) that Haul speaks, the seller's default. The words
//! live in `assets/i18n/<tag>.json`, one flat catalog per language with
//! `{name}` placeholders; pages get theirs filled in on the server and the
//! rest (what their scripts say) as a JSON block the scripts read.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A language Haul's buyer-facing pages and emails speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    Ru,
}

/// Every language spoken, in the order a language switch lists them.
pub const ALL: &[Locale] = &[Locale::En, Locale::Ru];

/// `Accept-Language` is read up to this many bytes and entries; the rest
/// is ignored (a browser sends a handful).
const ACCEPT_MAX_BYTES: usize = 1024;
const ACCEPT_MAX_ENTRIES: usize = 32;

impl Locale {
    /// The language of a tag: `ru`, `ru-RU`, `EN_us` (by its primary
    /// subtag); `None` for one Haul does not speak or that is not a tag.
    pub fn parse(tag: &str) -> Option<Locale> {
        let tag = tag.trim();
        if tag.is_empty() || tag.len() > 35 || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        match primary.to_ascii_lowercase().as_str() {
            "en" => Some(Locale::En),
            "ru" => Some(Locale::Ru),
            _ => None,
        }
    }

    /// The language's tag (`en`, `ru`), as `<html lang>` and the API say it.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ru => "ru",
        }
    }

    /// The language the browser prefers most among those Haul speaks, from
    /// an `Accept-Language` value (`ru-RU,ru;q=0.9,en;q=0.8`); `None` when
    /// it asks for none of them. Malformed entries are skipped, never an
    /// error: the header is a preference.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut header = header;
        if header.len() > ACCEPT_MAX_BYTES {
            let mut end = ACCEPT_MAX_BYTES;
            while !header.is_char_boundary(end) {
                end -= 1;
            }
            header = &header[..end];
        }
        let mut best: Option<(u16, Locale)> = None;
        for entry in header.split(',').take(ACCEPT_MAX_ENTRIES) {
            let mut parts = entry.split(';');
            let Some(locale) = Locale::parse(parts.next().unwrap_or("")) else {
                continue;
            };
            let mut q = Some(1000);
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")) {
                    q = quality(v);
                }
            }
            // The first of equal preferences wins, as the browser listed them.
            match q {
                Some(q) if q > 0 && best.is_none_or(|(b, _)| q > b) => best = Some((q, locale)),
                _ => {}
            }
        }
        best.map(|(_, l)| l)
    }

    /// Picks the language of a page: the buyer's pick, the purchase's,
    /// the browser's, else the seller's default.
    pub fn choose(
        picked: Option<&str>,
        recorded: Option<&str>,
        accept_language: Option<&str>,
        seller: Locale,
    ) -> Locale {
        picked
            .and_then(Locale::parse)
            .or_else(|| recorded.and_then(Locale::parse))
            .or_else(|| accept_language.and_then(Locale::from_accept_language))
            .unwrap_or(seller)
    }

    /// The words of `key` in this language (English where this language
    /// has none; empty where no language has it — the tests make sure every
    /// key a page or script uses is there).
    pub fn text(self, key: &str) -> &'static str {
        let all = catalogs();
        all.get(&self)
            .and_then(|c| c.get(key))
            .or_else(|| all.get(&Locale::En).and_then(|c| c.get(key)))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// [`Locale::text`] with each `{name}` replaced by its value (values
    /// are inserted once, never read as placeholders).
    pub fn fill(self, key: &str, values: &[(&str, &str)]) -> String {
        fill(self.text(key), values)
    }

    /// An amount in minor units written the way this language writes money
    /// (the same as the browser's `Intl.NumberFormat` with
    /// `currencyDisplay: 'narrowSymbol'`): `1 490,00 ₽` in Russian,
    /// `₽1,490.00` in English; `exponent` is the currency's minor digits.
    pub fn money(self, minor: i64, exponent: u8, currency: &str) -> String {
        let scale = 10_i64.pow(u32::from(exponent.min(4)));
        let (whole, frac) = (minor.unsigned_abs() / scale as u64, minor.unsigned_abs() % scale as u64);
        let (group, point) = match self {
            Locale::En => (",", "."),
            Locale::Ru => ("\u{a0}", ","),
        };
        let digits = whole.to_string();
        let mut number = String::with_capacity(digits.len() + 8);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                number.push_str(group);
            }
            number.push(c);
        }
        if exponent > 0 {
            number.push_str(point);
            number.push_str(&format!("{frac:0width$}", width = usize::from(exponent.min(4))));
        }
        let sign = if minor < 0 { "-" } else { "" };
        let symbol = symbol(self, currency);
        match (self, symbol) {
            (Locale::Ru, Some(s)) => format!("{sign}{number}\u{a0}{s}"),
            (Locale::Ru, None) => format!("{sign}{number}\u{a0}{currency}"),
            (Locale::En, Some(s)) => format!("{sign}{s}{number}"),
            (Locale::En, None) => format!("{sign}{currency}\u{a0}{number}"),
        }
    }

    /// An HTML page template in this language: `{{lang}}` is the tag,
    /// `{{key}}` the (escaped) words of a key, and `{{text}}` the catalog's
    /// keys under `prefixes` as JSON for the page's scripts (safe inside a
    /// `<script type="application/json">`).
    pub fn page(self, template: &str, prefixes: &[&str]) -> String {
        let mut out = String::with_capacity(template.len() + 4096);
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            match &after[..end] {
                "lang" => out.push_str(self.tag()),
                "text" => out.push_str(&self.script_text(prefixes)),
                key => out.push_str(&escape_html(self.text(key))),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// The keys under `prefixes` and their words, as JSON with `<`, `>`
    /// and `&` written as escapes (no `</script>` can appear): a page's
    /// `<script type="application/json" id="haul-text">` for its scripts.
    pub fn script_text(self, prefixes: &[&str]) -> String {
        let words: BTreeMap<&str, &str> = catalogs()
            .get(&Locale::En)
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .map(|k| (k.as_str(), self.text(k)))
            .collect();
        script_json(&words)
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

/// JSON for inside a `<script>` element: `<`, `>` and `&` as escapes.
fn script_json(words: &BTreeMap<&str, &str>) -> String {
    serde_json::to_string(words)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A `q=` weight in thousandths (`0.8` → 800); `None` if it is not one.
fn quality(v: &str) -> Option<u16> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if !matches!(int, "0" | "1") || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    let q = if int == "1" { 1000 } else { frac };
    (int == "0" || frac == 0).then_some(q)
}

/// The narrow symbol of a currency in a language, where the browser's
/// `Intl` writes one.
fn symbol(locale: Locale, currency: &str) -> Option<&'static str> {
    Some(match (currency, locale) {
        ("RUB", _) => "₽",
        ("USD", _) => "$",
        ("EUR", _) => "€",
        ("GBP", _) => "£",
        ("KZT", _) => "₸",
        ("UAH", _) => "₴",
        ("CNY" | "JPY", _) => "¥",
        ("TRY", _) => "₺",
        ("AMD", _) => "֏",
        ("GEL", _) => "₾",
        ("INR", _) => "₹",
        ("ILS", _) => "₪",
        ("KRW", _) => "₩",
        ("BYN", Locale::Ru) => "р.",
        _ => return None,
    })
}

/// Each `{name}` of `text` replaced by its value.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after
            .find('}')
            .and_then(|end| values.iter().find(|(k, _)| *k == &after[..end]).map(|(_, v)| (end, v)))
        {
            Some((end, v)) => {
                out.push_str(v);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Text made safe to put between HTML tags or in a quoted attribute.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

type Catalog = BTreeMap<String, String>;

const SOURCES: &[(Locale, &str)] = &[
    (Locale::En, include_str!("../assets/i18n/en.json")),
    (Locale::Ru, include_str!("../assets/i18n/ru.json")),
];

/// Every language's catalog, read once. The files are part of the build
/// and checked by the tests below, so one that does not parse is a bug
/// caught before release; it reads as an empty catalog, never a panic.
fn catalogs() -> &'static BTreeMap<Locale, Catalog> {
    static ALL: OnceLock<BTreeMap<Locale, Catalog>> = OnceLock::new();
    ALL.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(l, src)| (*l, serde_json::from_str(src).unwrap_or_default()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(s: &str) -> Vec<&str> {
        let mut out: Vec<&str> = s
            .split('{')
            .skip(1)
            .filter_map(|p| p.split_once('}').map(|(n, _)| n))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn every_language_has_every_key_with_the_same_placeholders() {
        for (l, src) in SOURCES {
            let c: Catalog = serde_json::from_str(src).unwrap_or_else(|e| panic!("{l}.json: {e}"));
            assert_eq!(c.len(), catalogs()[l].len());
        }
        let en = &catalogs()[&Locale::En];
        assert!(en.len() > 100);
        for l in ALL {
            let c = &catalogs()[l];
            assert_eq!(c.keys().collect::<Vec<_>>(), en.keys().collect::<Vec<_>>(), "{l}");
            for (k, v) in c {
                assert!(!v.trim().is_empty(), "{l}: {k} is empty");
                assert_eq!(placeholders(v), placeholders(&en[k]), "{l}: {k}");
            }
        }
    }

    #[test]
    fn the_browser_picks_among_languages_spoken() {
        let pick = Locale::from_accept_language;
        assert_eq!(pick("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7"), Some(Locale::Ru));
        assert_eq!(pick("en-GB,en;q=0.9,ru;q=0.8"), Some(Locale::En));
        assert_eq!(pick("de-DE,de;q=0.9,ru;q=0.5"), Some(Locale::Ru));
        assert_eq!(pick("en;q=0.3, ru;q=0.7"), Some(Locale::Ru));
        assert_eq!(pick("ru;q=0, en;q=0.1"), Some(Locale::En));
        assert_eq!(pick("de, fr"), None);
        assert_eq!(pick("*"), None);
        assert_eq!(pick(""), None);
        // Malformed weights and tags are skipped, never an error.
        assert_eq!(pick("ru;q=2, en"), Some(Locale::En));
        assert_eq!(pick("ru;q=0.x, ru<script>, en;q=0.5"), Some(Locale::En));
        assert_eq!(pick("ru;q=1.000"), Some(Locale::Ru));
        assert_eq!(pick("ru;q=1.5"), None);
        assert_eq!(pick(&"x,".repeat(10_000)), None);
        assert_eq!(pick(&format!("{}ru", "é".repeat(600))), None);
        assert_eq!(Locale::parse("RU_ru"), Some(Locale::Ru));
        assert_eq!(Locale::parse("russian"), None);
    }

    #[test]
    fn the_pick_goes_buyer_purchase_browser_seller() {
        let seller = Locale::Ru;
        assert_eq!(Locale::choose(Some("en"), Some("ru"), Some("ru"), seller), Locale::En);
        assert_eq!(Locale::choose(Some("xx"), Some("en"), Some("ru"), seller), Locale::En);
        assert_eq!(Locale::choose(None, None, Some("en-US"), seller), Locale::En);
        assert_eq!(Locale::choose(None, None, Some("de"), seller), Locale::Ru);
        assert_eq!(Locale::choose(None, None, None, Locale::En), Locale::En);
    }

    #[test]
    fn money_is_written_as_each_language_writes_it() {
        assert_eq!(Locale::Ru.money(149_000, 2, "RUB"), "1\u{a0}490,00\u{a0}₽");
        assert_eq!(Locale::En.money(149_000, 2, "RUB"), "₽1,490.00");
        assert_eq!(Locale::Ru.money(123_456_789, 2, "USD"), "1\u{a0}234\u{a0}567,89\u{a0}$");
        assert_eq!(Locale::En.money(123_456_789, 2, "EUR"), "€1,234,567.89");
        assert_eq!(Locale::En.money(1_234, 0, "JPY"), "¥1,234");
        assert_eq!(Locale::Ru.money(1_234_567, 3, "KWD"), "1\u{a0}234,567\u{a0}KWD");
        assert_eq!(Locale::En.money(5, 2, "XYZ"), "XYZ\u{a0}0.05");
        assert_eq!(Locale::Ru.money(-50, 2, "RUB"), "-0,50\u{a0}₽");
        assert_eq!(Locale::En.money(i64::MIN, 2, "RUB"), "-₽92,233,720,368,547,758.08");
    }

    #[test]
    fn pages_are_filled_and_their_scripts_text_cannot_close_the_script() {
        let page = Locale::Ru.page(
            "<html lang=\"{{lang}}\"><b>{{watch.buy}}</b><script type=\"application/json\">{{text}}</script>{{",
            &["watch.refusal."],
        );
        assert!(page.starts_with("<html lang=\"ru\"><b>Купить</b>"), "{page}");
        assert!(page.ends_with("</script>{{"), "{page}");
        let json = page.split("json\">").nth(1).unwrap().split("</script>").next().unwrap();
        let words: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
        assert_eq!(words["watch.refusal.offer_ended"], "Это предложение закончилось.");
        assert!(words.keys().all(|k| k.starts_with("watch.refusal.")));
        let evil = BTreeMap::from([("k", "</script><b>&")]);
        assert_eq!(script_json(&evil), r#"{"k":"\u003c/script\u003e\u003cb\u003e\u0026"}"#);
        assert_eq!(fill("{a} and {b} {c", &[("a", "{b}"), ("b", "x")]), "{b} and x {c");
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
