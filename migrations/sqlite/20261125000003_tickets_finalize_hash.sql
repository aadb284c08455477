-- The hash of the finalize key given to the browser that created the ticket (contract v2).
ALTER TABLE tickets ADD COLUMN finalize_hash TEXT;
