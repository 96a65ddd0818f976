//! The OpenAPI 3.1 document served at `/openapi.json`, built from one table
//! of operations (a test checks every documented operation is routed).

use serde_json::{json, Map, Value};

#[derive(Clone, Copy)]
pub enum Auth {
    None,
    Seller,
    Viewer,
}

/// One documented operation.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    /// Name of a request body schema in `components.schemas`.
    pub body: Option<&'static str>,
    pub success: u16,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    body: Option<&'static str>,
    success: u16,
) -> Op {
    Op {
        method,
        path,
        summary,
        auth,
        body,
        success,
    }
}

pub const OPERATIONS: &[Op] = &[
    op(
        "post",
        "/v1/streams",
        "Create a stream (scheduled)",
        Auth::Seller,
        Some("NewStream"),
        201,
    ),
    op(
        "get",
        "/v1/streams",
        "List the seller's streams, newest first (?limit=&before=)",
        Auth::Seller,
        None,
        200,
    ),
    op("get", "/v1/streams/{id}", "Get a stream", Auth::Seller, None, 200),
    op(
        "post",
        "/v1/streams/{id}/live",
        "Go live (scheduled → live)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/streams/{id}/end",
        "End the stream and cancel its open offers",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/streams/{id}/unpin",
        "Unpin the pinned lot",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/streams/{id}/messages",
        "Send a note to everyone watching (a `message` event)",
        Auth::Seller,
        Some("StreamMessage"),
        202,
    ),
    op(
        "post",
        "/v1/streams/{id}/lots",
        "Add a lot to a stream",
        Auth::Seller,
        Some("NewLot"),
        201,
    ),
    op(
        "get",
        "/v1/streams/{id}/lots",
        "List a stream's lots (?archived=true: archived ones too)",
        Auth::Seller,
        None,
        200,
    ),
    op("get", "/v1/lots/{id}", "Get a lot", Auth::Seller, None, 200),
    op(
        "patch",
        "/v1/lots/{id}",
        "Update a lot",
        Auth::Seller,
        Some("LotPatch"),
        200,
    ),
    op(
        "delete",
        "/v1/lots/{id}",
        "Delete a lot that was never offered (one that was is archived)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/lots/{id}/archive",
        "Archive a lot: kept for its orders, no longer listed, pinned or offered; its drafts are cancelled",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/lots/{id}/pin",
        "Pin a lot on its stream",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/lots/{id}/offers",
        "Create an offer (draft) on a lot",
        Auth::Seller,
        Some("NewOffer"),
        201,
    ),
    op(
        "get",
        "/v1/streams/{id}/offers",
        "List a stream's offers with stock levels",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/offers/{id}",
        "Get an offer with stock levels",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "patch",
        "/v1/offers/{id}",
        "Change an offer: any term of a draft; a live one's quantity (never below held + sold), per_buyer_limit and end (ends_at or extend_seconds), broadcast as offer.updated",
        Auth::Seller,
        Some("OfferPatch"),
        200,
    ),
    op(
        "post",
        "/v1/offers/{id}/end",
        "End a draft or live offer now, with a note viewers see",
        Auth::Seller,
        Some("EndOffer"),
        200,
    ),
    op(
        "post",
        "/v1/offers/{id}/start",
        "Start an offer (draft → live)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/offers/{id}/cancel",
        "Cancel an offer",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/offers/{id}/holds/{hold}/commit",
        "Turn a hold into a sale (idempotent)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/viewer-tokens",
        "Mint a viewer token for one of the seller's viewers",
        Auth::Seller,
        Some("MintToken"),
        201,
    ),
    op(
        "post",
        "/v1/offers/{id}/holds/{hold}/order",
        "The order for one's own live hold (created once per hold), with its checkout session for the widget",
        Auth::Viewer,
        None,
        201,
    ),
    op(
        "post",
        "/v1/api-keys",
        "A new API key of the seller's mode (the key is shown once)",
        Auth::Seller,
        Some("NewApiKey"),
        201,
    ),
    op("get", "/v1/api-keys", "The seller's API keys (never the keys themselves)", Auth::Seller, None, 200),
    op(
        "delete",
        "/v1/api-keys/{id}",
        "Revoke a key at once (not the last working one)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/api-keys/{id}/rotate",
        "A new key under the same name; the old one works on for the overlap (default a day)",
        Auth::Seller,
        Some("Rotation"),
        201,
    ),
    op(
        "get",
        "/v1/orders",
        "The order book, newest first (?limit=&after=<next_cursor>&stream=&offer=&state=&fulfilment=&unconfirmed=&created_gte=&created_lt=&email=&phone=&reference=)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/orders/export.csv",
        "The order book as CSV, streamed (the same filters as the list)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/viewer/orders",
        "A viewer's own orders, newest first (?stream=&limit=&after=<next_cursor>)",
        Auth::Viewer,
        None,
        200,
    ),
    op(
        "get",
        "/v1/orders/{id}",
        "One's own order with its attempts",
        Auth::Viewer,
        None,
        200,
    ),
    op(
        "post",
        "/v1/orders/{id}/attempts",
        "Start paying at an acquirer; the hold is kept for the payment window",
        Auth::Viewer,
        Some("StartAttempt"),
        201,
    ),
    op(
        "post",
        "/v1/checkout/sessions",
        "Create a checkout session for one's own site (receipt items must sum to the amount)",
        Auth::Seller,
        Some("NewCheckoutSession"),
        201,
    ),
    op(
        "get",
        "/v1/checkout/sessions",
        "List checkout sessions, newest first",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/checkout/sessions/{id}",
        "Get a checkout session with its order's state",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/checkout/sessions/{id}/cancel",
        "Cancel an unpaid checkout session",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/settings",
        "The seller's settings in this mode",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "patch",
        "/v1/settings",
        "Change settings: signed_viewers_only (anonymous viewers may watch but not hold), confirm_within_minutes (flag paid orders not confirmed in time; null: never), locale (the buyers' pages and emails when their browser asks for no language Haul speaks: en, ru)",
        Auth::Seller,
        Some("SettingsChange"),
        200,
    ),
    op(
        "put",
        "/v1/widget-origins",
        "Set the origins allowed to frame the checkout page and receive its outcome",
        Auth::Seller,
        Some("Origins"),
        200,
    ),
    op(
        "get",
        "/v1/widget-origins",
        "The seller's widget origins",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/checkout/sessions/{id}/status",
        "What the checkout page shows: summary, state, origins (no personal data)",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/widget-secret",
        "A new widget secret (shown once) for signing checkout parameters",
        Auth::Seller,
        None,
        201,
    ),
    op(
        "post",
        "/v1/checkout/signed",
        "A checkout session from parameters signed with the seller's widget secret",
        Auth::None,
        Some("SignedCheckout"),
        201,
    ),
    op(
        "post",
        "/v1/orders/{id}/fulfilment",
        "Move a paid order's fulfilment forward (confirmed, packed, shipped with carrier and tracking, delivered; cancelled refunds all that is left, returned refunds refund_minor); the same state again changes nothing (200)",
        Auth::Seller,
        Some("FulfilmentMove"),
        201,
    ),
    op(
        "post",
        "/v1/orders/fulfilment",
        "Move many orders (confirmed, packed, delivered, cancelled) by ids (at most 100) or by the order book's filter (100 a call; has_more says call again)",
        Auth::Seller,
        Some("BulkFulfilment"),
        200,
    ),
    op(
        "get",
        "/v1/checkout-settings",
        "What the seller's stream purchases ask at checkout (name, phone, email, address) and the delivery options",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "put",
        "/v1/checkout-settings",
        "Set what stream purchases ask at checkout and the delivery options with prices",
        Auth::Seller,
        Some("CheckoutSettings"),
        200,
    ),
    op(
        "get",
        "/v1/streams/{id}/checkout-settings",
        "A stream's checkout settings (inherited: the seller's)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "put",
        "/v1/streams/{id}/checkout-settings",
        "A stream's own checkout settings, over the seller's",
        Auth::Seller,
        Some("CheckoutSettings"),
        200,
    ),
    op(
        "delete",
        "/v1/streams/{id}/checkout-settings",
        "The stream goes back to the seller's checkout settings",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/checkout/sessions/{id}/details",
        "What the checkout asks of the buyer, what they gave and what they kept before (same origin only)",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/checkout/sessions/{id}/details",
        "The buyer's details and delivery before paying; the total follows the delivery (409 details_locked once paying)",
        Auth::None,
        Some("BuyerDetails"),
        200,
    ),
    op(
        "get",
        "/v1/mail-templates",
        "The buyers' emails (paid, shipped, refunded): each kind's subject and body, the default until set, and the placeholders",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "put",
        "/v1/mail-templates/{kind}",
        "The seller's own template of a kind (paid, shipped, refunded)",
        Auth::Seller,
        Some("MailTemplate"),
        200,
    ),
    op(
        "delete",
        "/v1/mail-templates/{kind}",
        "Back to the default template",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/mail/opt-out",
        "The page of the opt-out link in every buyer's email (?seller=&email=&sig=): asks first",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/mail/opt-out",
        "Opts the buyer out of the seller's emails (the link's signed fields, as a form)",
        Auth::None,
        None,
        200,
    ),
    op(
        "get",
        "/v1/integrations/retailcrm",
        "The RetailCRM connector (never its key) and the hook URL for RetailCRM's trigger",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "put",
        "/v1/integrations/retailcrm",
        "Set up the RetailCRM connector: paid orders go to the CRM, its statuses come back",
        Auth::Seller,
        Some("RetailCrmConnector"),
        200,
    ),
    op(
        "delete",
        "/v1/integrations/retailcrm",
        "Remove the RetailCRM connector",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/integrations/retailcrm/hook/{token}",
        "RetailCRM's trigger (?externalId=<order id>): Haul reads the order's status from the CRM and follows it",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/integrations/retailcrm/hook/{token}",
        "The same, as a POST",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/orders/{id}/refunds",
        "Refund part or all of a paid order",
        Auth::Seller,
        Some("NewRefund"),
        201,
    ),
    op(
        "post",
        "/v1/webhook-endpoints",
        "Add a webhook endpoint (its whsec_ secret is shown once)",
        Auth::Seller,
        Some("NewWebhookEndpoint"),
        201,
    ),
    op(
        "get",
        "/v1/webhook-endpoints",
        "List webhook endpoints",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/acquirers",
        "Connect an account at an acquiring bank (its secret is sealed and never returned)",
        Auth::Seller,
        Some("NewAcquirerAccount"),
        201,
    ),
    op(
        "get",
        "/v1/acquirers",
        "The seller's bank accounts in the order they are tried",
        Auth::Seller,
        None,
        200,
    ),
    op("get", "/v1/acquirers/{id}", "One bank account", Auth::Seller, None, 200),
    op(
        "patch",
        "/v1/acquirers/{id}",
        "Reorder, enable or disable a bank account, or replace its secret or webhook secret",
        Auth::Seller,
        Some("AcquirerChange"),
        200,
    ),
    op(
        "delete",
        "/v1/acquirers/{id}",
        "Disconnect a bank account",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/callbacks/tbank",
        "T-Bank's notification (Token-signed); answered OK once received, applied exactly once",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/callbacks/cloudpayments/{account}/{kind}",
        "CloudPayments' Check, Pay, Fail or Refund notification (Content-HMAC); answered {\"code\":0} or a refusal code",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/callbacks/yookassa/{account}",
        "YooKassa's notification: the payment it names is fetched from YooKassa's API, captured when authorized, and applied exactly once",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/callbacks/stripe/{account}",
        "Stripe's webhook (Stripe-Signature); Checkout Session events applied exactly once",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/callbacks/sandbox",
        "The sandbox acquirer's signed callback (Haul-Sandbox-Signature); applied exactly once",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/viewers/anonymous",
        "Get an anonymous viewer token",
        Auth::None,
        None,
        201,
    ),
    op(
        "get",
        "/v1/public/streams/{id}",
        "A stream as viewers see it: pinned lot, live offers with units left, server time",
        Auth::None,
        None,
        200,
    ),
    op(
        "get",
        "/v1/public/offers/{id}",
        "An offer as viewers see it, with units left",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/v1/offers/{id}/reserve",
        "Hold units for the viewer (201 new, 200 replayed)",
        Auth::Viewer,
        Some("Reserve"),
        201,
    ),
    op(
        "get",
        "/v1/offers/{id}/holds/{hold}",
        "The viewer's hold",
        Auth::Viewer,
        None,
        200,
    ),
    op(
        "post",
        "/v1/offers/{id}/holds/{hold}/release",
        "Give the hold back",
        Auth::Viewer,
        None,
        200,
    ),
    op("get", "/healthz", "The process is up", Auth::None, None, 200),
    op(
        "get",
        "/readyz",
        "The database and the stock engine answer",
        Auth::None,
        None,
        200,
    ),
    op("get", "/metrics", "Prometheus metrics", Auth::None, None, 200),
    op(
        "post",
        "/v1/checkout/sessions/{id}/attempts",
        "The buyer starts paying a session (its id is the capability)",
        Auth::None,
        Some("PayWith"),
        201,
    ),
    op(
        "patch",
        "/v1/webhook-endpoints/{id}",
        "Change an endpoint's URL, event types, or whether it is sent to",
        Auth::Seller,
        Some("EndpointChange"),
        200,
    ),
    op(
        "delete",
        "/v1/webhook-endpoints/{id}",
        "Delete an endpoint (its delivery log is kept)",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/webhook-endpoints/{id}/rotate",
        "A new signing secret (shown once); the old one signs beside it for 24 h",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/v1/webhook-endpoints/{id}/deliveries",
        "The endpoint's delivery log",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "post",
        "/v1/webhook-endpoints/{id}/deliveries/{message}/resend",
        "Send a message to the endpoint again",
        Auth::Seller,
        None,
        200,
    ),
    op(
        "get",
        "/watch/{id}",
        "The viewer page of a stream (HTML) in the viewer's language (?lang=, else Accept-Language, else the seller's)",
        Auth::None,
        None,
        200,
    ),
    op(
        "get",
        "/checkout/{id}",
        "The checkout page of a session (HTML) in the buyer's language (?lang=, the session's locale, Accept-Language, the seller's)",
        Auth::None,
        None,
        200,
    ),
    op("get", "/widget.js", "The embeddable checkout widget (JavaScript)", Auth::None, None, 200),
    op("get", "/assets/{name}", "The pages' scripts and styles", Auth::None, None, 200),
    op(
        "get",
        "/sandbox/pay/{attempt}",
        "The sandbox acquirer's card page (HTML; test mode only)",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/sandbox/pay/{attempt}",
        "The sandbox card page's form (test cards only)",
        Auth::None,
        None,
        200,
    ),
    op(
        "post",
        "/sandbox/challenge/{attempt}",
        "The sandbox's 3-D Secure challenge form",
        Auth::None,
        None,
        200,
    ),
    op(
        "get",
        "/yookassa/confirm/{attempt}",
        "YooKassa's embedded confirmation of an attempt (HTML)",
        Auth::None,
        None,
        200,
    ),
    op(
        "get",
        "/connection/websocket",
        "The viewer realtime protocol (Centrifugo's JSON protocol over WebSocket)",
        Auth::None,
        None,
        101,
    ),
    op("get", "/openapi.json", "This document", Auth::None, None, 200),
];

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "description": "stable machine-readable code" },
                "message": { "type": "string" },
                "field": { "type": "string" }, "units_left": { "type": "integer" },
                "remaining": { "type": "integer" }, "retry_after": { "type": "integer" } } } }
        },
        "NewStream": { "type": "object", "required": ["title"], "additionalProperties": false,
            "properties": { "title": { "type": "string", "minLength": 1, "maxLength": 200 } } },
        "NewWebhookEndpoint": { "type": "object", "required": ["url"], "additionalProperties": false,
            "properties": { "url": { "type": "string", "format": "uri", "maxLength": 2000 },
                "event_types": { "type": "array", "items": { "type": "string",
                    "enum": ["order.paid", "order.failed", "order.expired", "order.refunded", "order.confirmed", "order.packed", "order.shipped", "order.delivered", "order.cancelled", "order.returned", "order.unconfirmed", "hold.expired", "payment.disagreement", "payment.duplicate", "payment.duplicate_refunded"] } } } },
        "NewCheckoutSession": { "type": "object", "additionalProperties": false,
            "required": ["amount_minor", "currency", "items", "reference", "success_url", "cancel_url"],
            "description": "Give customer_email or customer_phone (for the receipt).",
            "properties": {
                "amount_minor": { "type": "integer", "minimum": 1 },
                "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
                "reference": { "type": "string", "minLength": 1, "maxLength": 64 },
                "success_url": { "type": "string", "format": "uri" },
                "cancel_url": { "type": "string", "format": "uri" },
                "customer_email": { "type": "string" },
                "customer_phone": { "type": "string", "pattern": "^\\+[0-9]{10,15}$" },
                "expires_in_seconds": { "type": "integer", "minimum": 60, "maximum": 86400 },
                "locale": { "type": "string", "enum": ["en", "ru"], "description": "the checkout's language; default: the buyer's browser's, then the seller's" },
                "items": { "type": "array", "minItems": 1, "maxItems": 100, "items": {
                    "type": "object", "additionalProperties": false,
                    "required": ["name", "quantity", "price_minor", "vat"],
                    "properties": {
                        "name": { "type": "string", "minLength": 1, "maxLength": 128 },
                        "quantity": { "type": "integer", "minimum": 1, "maximum": 99999 },
                        "price_minor": { "type": "integer", "minimum": 1 },
                        "vat": { "type": "string", "enum": ["none", "vat0", "vat5", "vat7", "vat10", "vat20", "vat105", "vat107", "vat110", "vat120"] },
                        "payment_method": { "type": "string" },
                        "payment_object": { "type": "string" } } } } } },
        "StartAttempt": { "type": "object", "required": ["acquirer"], "additionalProperties": false,
            "properties": { "acquirer": { "type": "string", "enum": ["sandbox"] } } },
        "StreamMessage": { "type": "object", "required": ["text"], "additionalProperties": false,
            "properties": { "text": { "type": "string", "minLength": 1, "maxLength": 500 } } },
        "NewLot": { "type": "object", "required": ["title"], "additionalProperties": false,
            "description": "The sale terms (price with its currency, quantity, per-buyer limit, duration, SKU) are the defaults an offer of the lot starts from.",
            "properties": { "title": { "type": "string", "minLength": 1, "maxLength": 200 },
                "description": { "type": "string", "maxLength": 5000 },
                "image_url": { "type": ["string", "null"], "format": "uri" },
                "price_minor": { "type": ["integer", "null"], "minimum": 1 },
                "currency": { "type": ["string", "null"], "pattern": "^[A-Z]{3}$" },
                "quantity": { "type": ["integer", "null"], "minimum": 1, "maximum": 1000000 },
                "per_buyer_limit": { "type": ["integer", "null"], "minimum": 1 },
                "duration_seconds": { "type": ["integer", "null"], "minimum": 1, "maximum": 604800 },
                "sku": { "type": ["string", "null"], "minLength": 1, "maxLength": 64 } } },
        "LotPatch": { "type": "object", "additionalProperties": false,
            "description": "Absent fields stay; null clears an optional one.",
            "properties": { "title": { "type": "string" }, "description": { "type": "string" },
                "image_url": { "type": ["string", "null"] },
                "price_minor": { "type": ["integer", "null"], "minimum": 1 },
                "currency": { "type": ["string", "null"], "pattern": "^[A-Z]{3}$" },
                "quantity": { "type": ["integer", "null"], "minimum": 1, "maximum": 1000000 },
                "per_buyer_limit": { "type": ["integer", "null"], "minimum": 1 },
                "duration_seconds": { "type": ["integer", "null"], "minimum": 1, "maximum": 604800 },
                "sku": { "type": ["string", "null"], "minLength": 1, "maxLength": 64 } } },
        "NewOffer": { "type": "object", "required": ["price_minor", "currency", "quantity"], "additionalProperties": false,
            "description": "Give exactly one of duration_seconds and ends_at.",
            "properties": {
                "price_minor": { "type": "integer", "minimum": 1, "description": "unit price in minor units" },
                "currency": { "type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217" },
                "quantity": { "type": "integer", "minimum": 1, "maximum": 1000000 },
                "per_buyer_limit": { "type": "integer", "minimum": 1, "description": "default: quantity" },
                "duration_seconds": { "type": "integer", "minimum": 1, "maximum": 604800 },
                "ends_at": { "type": "integer", "description": "Unix milliseconds" },
                "hold_ttl_seconds": { "type": "integer", "minimum": 5, "maximum": 3600, "default": 600 },
                "start_at": { "type": "integer", "description": "Unix milliseconds: start by itself then (on a live stream, once the lot has no live offer)" } } },
        "OfferPatch": { "type": "object", "additionalProperties": false,
            "description": "A draft takes every field but extend_seconds; a live offer quantity, per_buyer_limit, ends_at or extend_seconds.",
            "properties": {
                "price_minor": { "type": "integer", "minimum": 1 },
                "quantity": { "type": "integer", "minimum": 1, "maximum": 1000000 },
                "per_buyer_limit": { "type": "integer", "minimum": 1 },
                "duration_seconds": { "type": "integer", "minimum": 1, "maximum": 604800 },
                "ends_at": { "type": "integer", "description": "Unix milliseconds" },
                "extend_seconds": { "type": "integer", "description": "negative: sooner" },
                "hold_ttl_seconds": { "type": "integer", "minimum": 5, "maximum": 3600 },
                "start_at": { "type": ["integer", "null"], "description": "Unix milliseconds; null unschedules" } } },
        "EndOffer": { "type": "object", "additionalProperties": false,
            "properties": { "note": { "type": "string", "minLength": 1, "maxLength": 200 } } },
        "MintToken": { "type": "object", "required": ["viewer_id"], "additionalProperties": false,
            "properties": { "viewer_id": { "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$" },
                "ttl_seconds": { "type": "integer", "minimum": 60, "maximum": 604800 } } },
        "SettingsChange": { "type": "object", "additionalProperties": false,
            "properties": { "signed_viewers_only": { "type": "boolean" },
                "confirm_within_minutes": { "type": ["integer", "null"], "minimum": 1, "maximum": 10080 },
                "locale": { "type": "string", "enum": ["en", "ru"] } } },
        "RetailCrmConnector": { "type": "object", "required": ["base_url", "api_key", "site"],
            "properties": {
                "base_url": { "type": "string", "format": "uri", "description": "https://<account>.retailcrm.ru" },
                "api_key": { "type": "string", "minLength": 1, "maxLength": 200 },
                "site": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$" },
                "enabled": { "type": "boolean" },
                "order_method": { "type": "string" }, "order_type": { "type": "string" },
                "payment_type": { "type": "string" },
                "delivery_codes": { "type": "object", "additionalProperties": { "type": "string" } },
                "status_map": { "type": "object", "additionalProperties": { "type": "string",
                    "enum": ["confirmed", "packed", "shipped", "delivered", "cancelled", "returned"] } } } },
        "MailTemplate": { "type": "object", "required": ["subject", "body"], "additionalProperties": false,
            "properties": { "subject": { "type": "string", "minLength": 1, "maxLength": 200 },
                "body": { "type": "string", "minLength": 1, "maxLength": 10000,
                    "description": "plain text with {{shop}}, {{order_id}}, {{reference}}, {{amount}}, {{refunded}}, {{carrier}}, {{tracking_number}}, {{receipt_url}}, {{opt_out_url}}" } } },
        "CheckoutSettings": { "type": "object", "additionalProperties": false,
            "properties": {
                "fields": { "type": "object", "additionalProperties": false, "properties": {
                    "name": { "type": "string", "enum": ["required", "optional", "off"] },
                    "phone": { "type": "string", "enum": ["required", "optional", "off"] },
                    "email": { "type": "string", "enum": ["required", "optional", "off"] },
                    "address": { "type": "string", "enum": ["required", "off"] } } },
                "delivery": { "type": "array", "maxItems": 20, "items": { "type": "object",
                    "required": ["id", "name", "kind", "price_minor"], "additionalProperties": false,
                    "properties": {
                        "id": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$" },
                        "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                        "kind": { "type": "string", "enum": ["shipping", "pickup"] },
                        "price_minor": { "type": "integer", "minimum": 0 },
                        "address": { "type": "string", "description": "a pickup point's address (pickup only)" } } } } } },
        "BuyerDetails": { "type": "object", "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "maxLength": 100 },
                "phone": { "type": "string", "description": "with its country code; kept in E.164" },
                "email": { "type": "string" },
                "delivery": { "type": "string", "description": "a delivery option's id" },
                "address": { "type": "object", "required": ["country", "city", "line1", "postal_code"], "additionalProperties": false,
                    "properties": { "country": { "type": "string", "description": "ISO 3166-1 alpha-2" },
                        "region": { "type": "string" }, "city": { "type": "string" }, "line1": { "type": "string" },
                        "line2": { "type": "string" }, "postal_code": { "type": "string" } } },
                "save": { "type": "boolean", "description": "keep these details for the buyer's next purchase from this seller" } } },
        "FulfilmentMove": { "type": "object", "required": ["state"], "additionalProperties": false,
            "properties": {
                "state": { "type": "string", "enum": ["confirmed", "packed", "shipped", "delivered", "cancelled", "returned"] },
                "carrier": { "type": "string", "minLength": 1, "maxLength": 100, "description": "shipped only, required there" },
                "tracking_number": { "type": "string", "minLength": 1, "maxLength": 100, "description": "shipped only, required there" },
                "note": { "type": "string", "minLength": 1, "maxLength": 500 },
                "refund_minor": { "type": "integer", "minimum": 0, "description": "returned only, required there (0: no refund)" } } },
        "BulkFulfilment": { "type": "object", "required": ["state"], "additionalProperties": false,
            "description": "Give ids or filter, one of them.",
            "properties": {
                "state": { "type": "string", "enum": ["confirmed", "packed", "delivered", "cancelled"] },
                "note": { "type": "string", "minLength": 1, "maxLength": 500 },
                "ids": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "type": "string" } },
                "filter": { "type": "object", "additionalProperties": false, "properties": {
                    "stream": { "type": "string" }, "offer": { "type": "string" }, "state": { "type": "string" },
                    "fulfilment": { "type": "string" }, "unconfirmed": { "type": "boolean" },
                    "created_gte": { "type": "integer", "minimum": 0 }, "created_lt": { "type": "integer", "minimum": 0 },
                    "email": { "type": "string" }, "phone": { "type": "string" }, "reference": { "type": "string" } } } } },
        "Origins": { "type": "object", "required": ["origins"], "additionalProperties": false,
            "properties": { "origins": { "type": "array", "maxItems": 20,
                "items": { "type": "string", "description": "scheme://host[:port]" } } } },
        "SignedCheckout": { "type": "object", "required": ["seller", "amount_minor", "currency", "reference",
                "success_url", "cancel_url", "expires", "signature"],
            "description": "Every value a string; signature = hex HMAC-SHA256 with the widget secret over the other parameters sorted by key as key=value lines.",
            "additionalProperties": { "type": "string" },
            "properties": { "seller": { "type": "string" }, "amount_minor": { "type": "string" },
                "currency": { "type": "string" }, "reference": { "type": "string" },
                "success_url": { "type": "string" }, "cancel_url": { "type": "string" },
                "expires": { "type": "string" }, "signature": { "type": "string" } } },
        "NewRefund": { "type": "object", "additionalProperties": false,
            "properties": { "amount_minor": { "type": "integer", "minimum": 1, "description": "omitted: all that is left" },
                "reason": { "type": "string", "maxLength": 500 } } },
        "NewAcquirerAccount": { "type": "object", "required": ["acquirer", "account", "secret"], "additionalProperties": false,
            "description": "The credentials are proved with the bank before the account is stored.",
            "properties": { "acquirer": { "type": "string", "enum": ["tbank", "cloudpayments", "yookassa", "stripe"] },
                "account": { "type": "string", "minLength": 1 }, "secret": { "type": "string", "minLength": 1 },
                "webhook_secret": { "type": "string", "description": "Stripe: the endpoint's whsec_ secret" },
                "settings": { "type": "object" }, "priority": { "type": "integer", "minimum": 1 },
                "enabled": { "type": "boolean" } } },
        "AcquirerChange": { "type": "object", "additionalProperties": false,
            "properties": { "secret": { "type": "string" }, "webhook_secret": { "type": "string" },
                "settings": { "type": "object" }, "priority": { "type": "integer", "minimum": 1 },
                "enabled": { "type": "boolean" } } },
        "EndpointChange": { "type": "object", "additionalProperties": false,
            "properties": { "url": { "type": "string" }, "event_types": { "type": "array", "items": { "type": "string" } },
                "enabled": { "type": "boolean" } } },
        "NewApiKey": { "type": "object", "additionalProperties": false,
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 100 } } },
        "Rotation": { "type": "object", "additionalProperties": false,
            "properties": { "overlap_seconds": { "type": "integer", "minimum": 0, "maximum": 604800 } } },
        "PayWith": { "type": "object", "required": ["acquirer"], "additionalProperties": false,
            "properties": { "acquirer": { "type": "string" }, "customer_email": { "type": "string" },
                "locale": { "type": "string", "enum": ["en", "ru"], "description": "the language the buyer's page speaks: the emails follow it" } } },
        "Object": { "type": "object", "description": "an API object", "properties": { "livemode": { "type": "boolean" } } },
        "ModeObject": { "type": "object", "required": ["livemode"], "description": "an API object of one mode",
            "properties": { "livemode": { "type": "boolean" } } },
        "List": { "type": "object", "required": ["data", "livemode"], "properties": {
            "data": { "type": "array", "items": { "$ref": "#/components/schemas/ModeObject" } },
            "next_before": { "type": ["integer", "null"], "description": "the cursor of the next page" },
            "next_cursor": { "type": ["string", "null"], "description": "the order book's cursor of the next page (?after=)" },
            "has_more": { "type": "boolean" },
            "livemode": { "type": "boolean" } } },
        "CloudPaymentsCode": { "type": "object", "required": ["code"],
            "properties": { "code": { "type": "integer", "description": "0: taken; any other refuses (a Check stops the payment)" } } },
        "Received": { "type": "object", "required": ["received", "outcome"], "properties": {
            "received": { "type": "boolean" }, "outcome": { "type": "string" } } },
        "Reserve": { "type": "object", "required": ["quantity", "request_id"], "additionalProperties": false,
            "properties": { "quantity": { "type": "integer", "minimum": 1, "maximum": 1000 },
                "request_id": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } } }
    })
}

/// What an operation answers on success.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A JSON object; one of a mode (`livemode`) when `mode`.
    Object {
        mode: bool,
    },
    List,
    Text,
    Csv,
    Html,
    Script,
    Asset,
    Nothing,
    CloudPayments,
    Received,
    Upgrade,
}

fn answer_of(o: &Op) -> Answer {
    let p = o.path;
    let listed = [
        "/v1/streams",
        "/v1/streams/{id}/lots",
        "/v1/streams/{id}/offers",
        "/v1/checkout/sessions",
        "/v1/acquirers",
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{id}/deliveries",
        "/v1/orders",
        "/v1/api-keys",
        "/v1/viewer/orders",
    ];
    match o.method {
        _ if p == "/metrics" || p == "/v1/callbacks/tbank" => Answer::Text,
        _ if p.ends_with(".csv") => Answer::Csv,
        _ if p.starts_with("/v1/callbacks/cloudpayments/") => Answer::CloudPayments,
        _ if p.starts_with("/v1/callbacks/yookassa/") => Answer::Nothing,
        _ if p.starts_with("/v1/callbacks/") => Answer::Received,
        "get" if listed.contains(&p) => Answer::List,
        _ if p == "/widget.js" => Answer::Script,
        _ if p == "/assets/{name}" => Answer::Asset,
        _ if p == "/connection/websocket" => Answer::Upgrade,
        _ if !p.starts_with("/v1/") && !["/healthz", "/readyz", "/openapi.json"].contains(&p) => Answer::Html,
        _ => Answer::Object {
            mode: !matches!(o.auth, Auth::None) || p.starts_with("/v1/public/") || p.starts_with("/v1/checkout/"),
        },
    }
}

fn json_of(schema: &str) -> Value {
    json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } })
}

/// Every answer an operation gives: its success, and each error status it
/// can answer, with its body.
fn responses(o: &Op) -> Value {
    let answer = answer_of(o);
    let success = match answer {
        Answer::Object { mode: true } => json!({ "description": "success", "content": json_of("ModeObject") }),
        Answer::Object { mode: false } => json!({ "description": "success", "content": json_of("Object") }),
        Answer::List => json!({ "description": "one page, newest first", "content": json_of("List") }),
        Answer::Text => {
            json!({ "description": "success", "content": { "text/plain": { "schema": { "type": "string" } } } })
        }
        Answer::Html => {
            json!({ "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } })
        }
        Answer::Script => json!({ "description": "the script",
            "content": { "text/javascript": { "schema": { "type": "string" } } } }),
        Answer::Asset => json!({ "description": "the file", "content": {
            "text/javascript": { "schema": { "type": "string" } }, "text/css": { "schema": { "type": "string" } } } }),
        Answer::Nothing => json!({ "description": "acknowledged" }),
        Answer::CloudPayments => {
            json!({ "description": "the answer to CloudPayments", "content": json_of("CloudPaymentsCode") })
        }
        Answer::Received => {
            json!({ "description": "taken (applied, duplicate or past)", "content": json_of("Received") })
        }
        Answer::Upgrade => json!({ "description": "switching to WebSocket" }),
        Answer::Csv => json!({ "description": "the rows, a header first",
            "content": { "text/csv": { "schema": { "type": "string" } } } }),
    };
    let mut out = Map::new();
    out.insert(o.success.to_string(), success.clone());
    if o.success == 201 {
        // A replay of the same creation, or the same hold's order again.
        out.insert("200".into(), success);
    }
    // Errors are Haul's JSON error; the pages, forms, plain-text callbacks
    // and the WebSocket upgrade may answer theirs as text or a page.
    let error = |what: &str| -> Value {
        let json_error = json!({ "schema": { "$ref": "#/components/schemas/Error" } });
        let text = json!({ "schema": { "type": "string" } });
        match answer {
            Answer::CloudPayments => json!({ "description": what, "content": json_of("CloudPaymentsCode") }),
            Answer::Html | Answer::Asset | Answer::Script | Answer::Text | Answer::Nothing | Answer::Upgrade => {
                json!({ "description": what, "content": {
                    "application/json": json_error, "text/plain": text, "text/html": text } })
            }
            _ => json!({ "description": what, "content": { "application/json": json_error } }),
        }
    };
    let mut errors: Vec<(u16, &str)> = vec![
        (400, "invalid input (invalid_json, invalid_body, invalid_field naming the field, invalid_id, method_not_allowed…)"),
        (404, "not found (or another seller's, or the other mode's)"),
        (405, "this path does not take that method"),
        (413, "the body is too large"),
        (415, "the body is not JSON"),
        (429, "over a rate limit (Retry-After)"),
        (503, "a store is unavailable; try again"),
    ];
    if !matches!(o.auth, Auth::None) {
        errors.push((401, "missing or invalid API key or viewer token"));
    }
    if o.method != "get" {
        errors.push((
            409,
            "not now: a lifecycle, a stock refusal, or an idempotency key in use",
        ));
    }
    if o.path.ends_with("/reserve") || o.path.starts_with("/sandbox/") || o.path.ends_with("/order") {
        errors.push((403, "not allowed here (signed viewers only, or test mode only)"));
    }
    if o.path.starts_with("/v1/acquirers") || o.path.ends_with("/refunds") || o.path.ends_with("/attempts") {
        errors.push((502, "the bank did not take it, or could not be reached"));
    }
    if o.path == "/readyz" {
        errors.push((503, "not ready"));
    }
    for (status, what) in errors {
        out.insert(status.to_string(), error(what));
    }
    Value::Object(out)
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let mut operation = json!({ "summary": o.summary, "responses": responses(o) });
        if o.method == "post" && matches!(o.auth, Auth::Seller) {
            operation["parameters"] = json!([{ "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "1–255 visible ASCII characters: the same key and request answer the stored response again (Idempotent-Replayed: true); another request with it is 400 idempotency_key_reused; one still running is 409 idempotency_key_in_use",
                "schema": { "type": "string", "minLength": 1, "maxLength": 255 } }]);
        }
        // Every `{name}` of the path is a required path parameter.
        let params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !params.is_empty() {
            let mut all = params;
            if let Some(Value::Array(header)) = operation.get("parameters") {
                all.extend(header.iter().cloned());
            }
            operation["parameters"] = Value::Array(all);
        }
        match o.auth {
            Auth::None => {}
            Auth::Seller => operation["security"] = json!([{ "apiKey": [] }]),
            Auth::Viewer => operation["security"] = json!([{ "viewerToken": [] }]),
        }
        if let Some(body) = o.body {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": {
                "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
        }
        let entry = paths.entry(o.path).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Haul", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Live-stream shopping backend: streams, lots, offers, stock holds." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer", "description": "seller API key: hk_live_… or hk_test_… (the mode the call acts in)" },
                "viewerToken": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                 "description": "HS256 viewer token; sub is the viewer id" }
            }
        }
    })
}
