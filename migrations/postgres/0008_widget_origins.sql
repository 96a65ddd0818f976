-- The origins (scheme://host[:port]) allowed to frame a seller's checkout
-- page and to receive its outcome by postMessage; space-separated.
ALTER TABLE sellers ADD COLUMN widget_origins TEXT;
