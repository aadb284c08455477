CREATE INDEX tickets_browser ON tickets (browser_key);
