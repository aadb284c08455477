import { test, expect, Page, Browser } from '@playwright/test';
import * as path from 'path';
import { decodeQrDataUrl } from './qr';

// An email for the apps that insist on one: the account page → the email page → the demo
// mailbox (demo mode without SMTP) → the link → the account page shows the address.
const base = 'http://127.0.0.1:3100';
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(__dirname, '..', 'output', `${name}.png`), fullPage: true });

async function signIn(page: Page, browser: Browser, user: string) {
  await page.goto(`${base}/login`);
  const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src')) || '')!;
  const context = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
  const phone = await context.newPage();
  await phone.goto(link);
  await phone.getByRole('button', { name: user }).click();
  await phone.getByRole('button', { name: '点击登录' }).click();
  await page.waitForURL('**/account');
  await context.close();
}

test('add an email on the account page and verify it through the demo mailbox', async ({ page, browser }) => {
  await signIn(page, browser, '王五');
  await expect(page.getByTestId('email')).toContainText('未设置');
  await page.getByTestId('email-link').click();
  await expect(page.getByTestId('email-none')).toBeVisible();
  const address = `wangwu-${Date.now()}@example.com`;
  await page.getByTestId('email-input').fill(address);
  await shot(page, '31-email-form');
  await page.getByTestId('email-send').click();
  await expect(page.getByTestId('email-sent')).toContainText(address);

  const mailbox = await page.context().newPage();
  await mailbox.goto(`${base}/_wechat/mailbox`);
  const mail = mailbox.getByTestId('mail').filter({ hasText: address }).first();
  await expect(mail).toBeVisible();
  await shot(mailbox, '32-demo-mailbox');
  const href = (await mail.getByTestId('mail-link').getAttribute('href'))!;
  await page.goto(href);
  await page.waitForURL('**/account');
  await expect(page.getByTestId('email')).toContainText(address);
  await shot(page, '33-account-with-email');
  // Signed out again: the later specs count 王五's browsers on this server.
  await page.getByTestId('logout').click();
  await page.waitForURL('**/login');
});
