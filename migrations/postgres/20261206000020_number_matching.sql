-- Number matching (LOGIN_NUMBER_MATCH): the two digits the browser shows once the ticket is
-- scanned, which the phone must pick from three; wrong picks so far (the second cancels).
ALTER TABLE tickets ADD COLUMN match_number BIGINT;
ALTER TABLE tickets ADD COLUMN match_misses BIGINT NOT NULL DEFAULT 0;
