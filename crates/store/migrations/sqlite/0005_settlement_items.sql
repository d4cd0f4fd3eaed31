-- Issue 6: what each line of a settlement was, so a settlement read back (and its receipt)
-- shows the item, quantity and unit price, and why a settlement was reversed.
-- `items`: JSON array of [code, quantity, unit_price_fen] per line, in the order of the
-- claim's lines (class and amount stay in `claim`); NULL for rows settled before this.
ALTER TABLE settlement ADD COLUMN items TEXT;
-- the reason given with a reversal (冲正), trimmed, 1 to 200 characters; NULL when settled
ALTER TABLE settlement ADD COLUMN reversal_reason TEXT;
