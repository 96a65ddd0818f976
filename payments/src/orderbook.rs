//! The seller's order book: every order of one seller (one mode), newest
//! first, filtered, in pages a cursor walks without skipping or repeating
//! an order however many are made meanwhile (the sort is total: creation
//! time, then id). The CSV export walks the same pages.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::fulfilment::Fulfilment;
use crate::state::OrderState;
use crate::store::{order_from_row, Order, StoreError};

/// Which orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub stream: Option<String>,
    pub offer: Option<String>,
    pub state: Option<OrderState>,
    pub fulfilment: Option<Fulfilment>,
    /// Only orders flagged as not confirmed in time (`true`), or only
    /// those not flagged (`false`).
    pub unconfirmed: Option<bool>,
    /// Only orders whose fulfilment may move to this state (a bulk move's
    /// walk: what it moved leaves the set).
    pub movable_to: Option<Fulfilment>,
    /// Created at or after (Unix ms).
    pub created_gte: Option<i64>,
    /// Created before (Unix ms).
    pub created_lt: Option<i64>,
    /// The buyer's email (any case).
    pub email: Option<String>,
    pub phone: Option<String>,
    pub reference: Option<String>,
}

/// Where a page ends: the last order's creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// The opaque form a client sends back (`<ms>_<order id>`).
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at, self.id)
    }

    /// The cursor just past `e`.
    pub fn of(e: &Entry) -> Cursor {
        Cursor {
            created_at: e.order.created_at,
            id: e.order.id.to_string(),
        }
    }

    pub fn parse(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once('_')?;
        let created_at = at.parse::<i64>().ok().filter(|t| *t >= 0)?;
        crate::ids::OrderId::parse(id).ok()?;
        Some(Cursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// One order as the book shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub order: Order,
    /// A stream purchase's stream.
    pub stream_id: Option<String>,
    /// The buyer's contact given at checkout.
    pub customer_email: Option<String>,
    pub customer_phone: Option<String>,
}

enum Bind {
    Text(String),
    Int(i64),
}

/// Whose orders.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A seller's book.
    Seller(&'a str),
    /// A buyer's own orders (at whichever seller).
    Buyer(&'a str),
}

/// Up to `limit` orders after `after`, newest first.
pub async fn page(
    pool: &AnyPool,
    scope: Scope<'_>,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let (column, who) = match scope {
        Scope::Seller(s) => ("o.seller_id", s),
        Scope::Buyer(b) => ("o.buyer_id", b),
    };
    let mut sql = format!(
        "SELECT o.*, o.stream_id AS book_stream, cs.customer_email AS book_email, cs.customer_phone AS book_phone \
         FROM orders o LEFT JOIN checkout_sessions cs ON cs.order_id = o.id WHERE {column} = $1"
    );
    let mut binds = vec![Bind::Text(who.to_owned())];
    let clause = |sql: &mut String, binds: &mut Vec<Bind>, condition: &str, value: Bind| {
        binds.push(value);
        sql.push_str(&format!(
            " AND {}",
            condition.replace('?', &format!("${}", binds.len()))
        ));
    };
    if let Some(v) = &filter.stream {
        clause(&mut sql, &mut binds, "o.stream_id = ?", Bind::Text(v.clone()));
    }
    if let Some(v) = &filter.offer {
        clause(&mut sql, &mut binds, "o.offer_id = ?", Bind::Text(v.clone()));
    }
    if let Some(v) = filter.state {
        clause(&mut sql, &mut binds, "o.state = ?", Bind::Text(v.as_str().to_owned()));
    }
    if let Some(v) = filter.fulfilment {
        clause(
            &mut sql,
            &mut binds,
            "o.fulfilment = ?",
            Bind::Text(v.as_str().to_owned()),
        );
    }
    if let Some(to) = filter.movable_to {
        let from: Vec<String> = Fulfilment::ALL
            .into_iter()
            .filter(|f| f.allows(to))
            .map(|f| format!("'{}'", f.as_str()))
            .collect();
        // Fixed names from the enum, never the caller's text.
        if from.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            sql.push_str(&format!(" AND o.fulfilment IN ({})", from.join(", ")));
        }
    }
    match filter.unconfirmed {
        Some(true) => sql.push_str(" AND o.unconfirmed_at IS NOT NULL AND o.fulfilment = 'new'"),
        Some(false) => sql.push_str(" AND (o.unconfirmed_at IS NULL OR o.fulfilment <> 'new')"),
        None => {}
    }
    if let Some(v) = filter.created_gte {
        clause(&mut sql, &mut binds, "o.created_at >= ?", Bind::Int(v));
    }
    if let Some(v) = filter.created_lt {
        clause(&mut sql, &mut binds, "o.created_at < ?", Bind::Int(v));
    }
    if let Some(v) = &filter.email {
        clause(
            &mut sql,
            &mut binds,
            "LOWER(cs.customer_email) = ?",
            Bind::Text(v.to_lowercase()),
        );
    }
    if let Some(v) = &filter.phone {
        clause(&mut sql, &mut binds, "cs.customer_phone = ?", Bind::Text(v.clone()));
    }
    if let Some(v) = &filter.reference {
        clause(&mut sql, &mut binds, "o.reference = ?", Bind::Text(v.clone()));
    }
    if let Some(c) = after {
        binds.push(Bind::Int(c.created_at));
        let at = binds.len();
        binds.push(Bind::Text(c.id.clone()));
        let id = binds.len();
        // A row comparison, so the index walk starts at the cursor (an OR
        // of the two would be a filter, reading every row before it).
        sql.push_str(&format!(" AND (o.created_at, o.id) < (${at}, ${id})"));
    }
    binds.push(Bind::Int(limit));
    sql.push_str(&format!(
        " ORDER BY o.created_at DESC, o.id DESC LIMIT ${}",
        binds.len()
    ));
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    let rows = q.fetch_all(pool).await?;
    rows.iter().map(entry).collect()
}

fn entry(row: &AnyRow) -> Result<Entry, StoreError> {
    Ok(Entry {
        order: order_from_row(row)?,
        stream_id: row.try_get("book_stream")?,
        customer_email: row.try_get("book_email")?,
        customer_phone: row.try_get("book_phone")?,
    })
}

/// One CSV field, quoted when it must be, and defused when a spreadsheet
/// would read it as a formula (a buyer's email or a reference may start
/// with `=`, `+`, `-` or `@`).
pub fn csv_field(value: &str) -> String {
    let defused = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

/// The CSV header.
pub const CSV_HEADER: &str = "id,created_at,state,amount_minor,currency,refunded_minor,reference,stream_id,offer_id,buyer_id,customer_email,customer_phone,fulfilment,carrier,tracking_number\n";

/// One order's CSV line.
pub fn csv_line(e: &Entry) -> String {
    let o = &e.order;
    let fields = [
        o.id.to_string(),
        o.created_at.to_string(),
        o.state.as_str().to_owned(),
        o.amount_minor.to_string(),
        o.currency.clone(),
        o.refunded_minor.to_string(),
        o.reference.clone().unwrap_or_default(),
        e.stream_id.clone().unwrap_or_default(),
        o.offer_id.clone().unwrap_or_default(),
        o.buyer_id.clone().unwrap_or_default(),
        e.customer_email.clone().unwrap_or_default(),
        e.customer_phone.clone().unwrap_or_default(),
        o.fulfilment.map(|f| f.as_str().to_owned()).unwrap_or_default(),
        o.carrier.clone().unwrap_or_default(),
        o.tracking_number.clone().unwrap_or_default(),
    ];
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = Cursor {
            created_at: 1_700_000_000_000,
            id: "ord_abcdefghijklmnopqrstuv".into(),
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        for bad in [
            "",
            "_",
            "12",
            "x_ord_abc",
            "-1_ord_abcdefghijklmnopqrstuv",
            "12_pat_abcdefghijklmnopqrstuv",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+7 900"), "'+7 900");
        assert_eq!(csv_field("@cmd"), "'@cmd");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
