import { Page } from '@playwright/test';

/**
 * Every page must work under its Content-Security-Policy: a violation fails the test.
 * The failure names the page and the documents the browser loaded last, each with its
 * status and policy (a page answered with the policy meant for what is not a page, whose
 * inline hydration script is then blocked, was seen once and not explained).
 */
export function failOnCspViolation(page: Page) {
  const documents: string[] = [];
  page.on('response', (r) => {
    if (!r.request().isNavigationRequest() || r.frame() !== page.mainFrame()) return;
    const h = r.headers();
    const csp = h['content-security-policy'] || '(none)';
    documents.push(`${r.status()} ${r.url()} [${h['content-type'] || '?'}] nonce policy: ${/nonce-/.test(csp)} · ${csp.slice(0, 60)}`);
    if (documents.length > 5) documents.shift();
  });
  page.on('console', (msg) => {
    if (/Content.Security.Policy/i.test(msg.text())) {
      const where = msg.location();
      throw new Error(
        `CSP violation on ${page.url()} (${where.url}:${where.lineNumber}): ${msg.text()}\nlast documents:\n  ${documents.join('\n  ')}`,
      );
    }
  });
}
