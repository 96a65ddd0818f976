-- Live edits: a draft offer may be scheduled to start by itself (when its
-- stream is live and its lot has no live offer); an offer ended early
-- carries the seller's note to viewers; a lot may be archived (kept for
-- the orders that name it, out of the stream's listing and unsellable).
ALTER TABLE offers ADD COLUMN start_at BIGINT;
ALTER TABLE offers ADD COLUMN end_note TEXT;
ALTER TABLE lots ADD COLUMN archived_at BIGINT;
CREATE INDEX offers_scheduled ON offers (start_at) WHERE state = 'draft' AND start_at IS NOT NULL;
