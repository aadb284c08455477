import { test, expect, Page, Browser } from '@playwright/test';
import * as path from 'path';
import * as fs from 'fs';
import { decodeQrDataUrl } from './qr';
import { failOnCspViolation } from './csp';

const shots = path.join(__dirname, '..', 'output');
fs.mkdirSync(shots, { recursive: true });
// Every page must work under its Content-Security-Policy: a violation fails the test.
test.beforeEach(async ({ page }) => failOnCspViolation(page));

/** Waits until the WASM has hydrated the page (its click handlers are attached). */
const hydrated = (page: Page) => page.locator('html[data-hydrated="1"]').waitFor();

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

/** Reads the QR image off the page and decodes it. */
async function readQr(page: Page): Promise<string> {
  const img = page.getByTestId('qr');
  await expect(img).toBeVisible();
  const text = decodeQrDataUrl((await img.getAttribute('src')) || '');
  expect(text, 'the code is a readable JPEG QR').toBeTruthy();
  return text!;
}

/** Opens the QR's link in a separate browser context (the phone) and scans as `user`. */
async function phoneScan(browser: Browser, link: string, user: string) {
  const context = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
  const phone = await context.newPage();
  await phone.goto(link);
  await phone.getByRole('button', { name: user }).click();
  await expect(phone.locator('#requester')).toBeVisible();
  return { context, phone };
}

test('scan with the phone, confirm, and the browser lands on /account', async ({ page, browser }) => {
  await page.goto('/login');
  await expect(page.getByTestId('demo-banner')).toContainText('演示模式');
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  await expect(page.getByTestId('countdown')).toContainText('秒');
  await expect(page.getByTestId('nojs-continue')).toBeHidden();
  await shot(page, '01-login-waiting');

  const link = await readQr(page);
  expect(link).toMatch(/\/_wechat\/phone\?scene=[A-Za-z0-9_-]{22}$/);
  const { context, phone } = await phoneScan(browser, link, '张三');
  await expect(phone.locator('#req-browser')).toContainText('Chrom');
  await expect(phone.locator('#req-ip')).toHaveText('127.0.0.1');
  // No app asked for this login (not OpenID Connect): no empty 登录到 row.
  await expect(phone.locator('#req-client-row')).toBeHidden();
  await shot(phone, '02-phone-scanned');

  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'scanned');
  await expect(page.getByTestId('overlay-title')).toHaveText('扫码成功，请在手机上确认');
  await shot(page, '03-login-scanned');

  await phone.getByRole('button', { name: '点击登录' }).click();
  await expect(phone.locator('#motto')).toHaveText('已确认，请返回浏览器');
  await expect(phone.getByRole('button', { name: '点击登录' })).toBeDisabled();
  await shot(phone, '04-phone-confirmed');

  await page.waitForURL('**/account');
  await expect(page.getByTestId('user-name')).toContainText('微信用户');
  await expect(page.getByTestId('openid')).toContainText('…');
  await expect(page.locator('[data-testid=recent-logins] tbody tr')).toHaveCount(1);
  await shot(page, '05-account');

  // Signed in: /login goes straight on; sign out ends it.
  await page.goto('/login');
  await expect(page).toHaveURL(/\/account$/);
  // The account page is server HTML: its buttons are forms, usable at once.
  await page.getByTestId('logout').click();
  await page.waitForURL('**/login');
  await page.goto('/account');
  await expect(page).toHaveURL(/\/login\?next=\/account$/);
  await context.close();
});

test('cancel on the phone, then 刷新 brings a new code', async ({ page, browser }) => {
  await page.goto('/login');
  const link = await readQr(page);
  const firstSrc = await page.getByTestId('qr').getAttribute('src');
  const { context, phone } = await phoneScan(browser, link, '李四');
  await phone.getByRole('button', { name: '取消' }).click();
  await expect(phone.locator('#motto')).toHaveText('已取消');

  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'cancelled');
  await expect(page.getByTestId('overlay-title')).toHaveText('已在手机上取消登录');
  await shot(page, '06-login-cancelled');

  await page.getByTestId('refresh').click();
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  const secondSrc = await page.getByTestId('qr').getAttribute('src');
  expect(secondSrc).not.toEqual(firstSrc);
  const link2 = await readQr(page);
  expect(link2).not.toEqual(link);
  await context.close();
});

test('an expired code shows 刷新, which fetches a fresh one', async ({ page }) => {
  await page.goto('http://127.0.0.1:3101/login');
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  const first = await readQr(page);
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'expired', { timeout: 10_000 });
  await expect(page.getByTestId('overlay-title')).toHaveText('二维码已过期');
  await shot(page, '07-login-expired');
  await page.getByTestId('refresh').click();
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  expect(await readQr(page)).not.toEqual(first);
});

test('English is one click away', async ({ page }) => {
  await page.goto('/login');
  await page.getByRole('link', { name: 'English' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sign in with WeChat');
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  await shot(page, '08-login-english');
  await page.getByRole('link', { name: '中文' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('微信扫码登录');
});

test('signed in on two browsers: 退出其他设备 ends the other one', async ({ browser }) => {
  const signIn = async () => {
    const ctx = await browser.newContext({ locale: 'zh-CN' });
    const page = await ctx.newPage();
    await page.goto('/login');
    const link = await readQr(page);
    const { context, phone } = await phoneScan(browser, link, '王五');
    await phone.getByRole('button', { name: '点击登录' }).click();
    await page.waitForURL('**/account');
    await context.close();
    return { ctx, page };
  };
  const first = await signIn();
  const second = await signIn();
  await expect(second.page.locator('[data-testid=devices] tbody tr')).toHaveCount(2);
  await expect(second.page.locator('[data-testid=devices]')).toContainText('本设备');
  await shot(second.page, '09-account-devices');
  await second.page.getByTestId('sign-out-others').click();
  await expect(second.page.getByTestId('revoked')).toHaveText('已退出其他设备');
  await expect(second.page.locator('[data-testid=devices] tbody tr')).toHaveCount(1);
  await first.page.goto('/account');
  await expect(first.page).toHaveURL(/\/login\?next=\/account$/);
  // The browser that pressed it stays signed in.
  await second.page.goto('/account');
  await expect(second.page).toHaveURL(/\/account$/);
  await expect(second.page.getByTestId('user-name')).toContainText('微信用户');
  await first.ctx.close();
  await second.ctx.close();
});

test('WeChat failing while the code is made: a clear message and 重试, not a spinner', async ({ page }) => {
  // The server without a pool of ready codes: this page's code is made on demand.
  const base = 'http://127.0.0.1:3101';
  const fault = await page.request.post(`${base}/_wechat/sim/faults`, {
    data: { endpoint: 'getwxacodeunlimit', kind: 'http_status', status: 500, count: 1 },
  });
  expect(fault.ok()).toBeTruthy();
  await page.goto(`${base}/login`);
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'error');
  await expect(page.getByTestId('overlay-title')).toHaveText('微信服务暂时不可用，请稍后重试');
  await shot(page, '10-login-wechat-down');
  // The error came with the first HTML; 重试 works once the WASM has taken over.
  await hydrated(page);
  await page.getByTestId('refresh').click();
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  await readQr(page);
});

test('without JavaScript: the QR is in the page, and 继续 signs in once the phone confirms', async ({ browser }) => {
  const ctx = await browser.newContext({ javaScriptEnabled: false, locale: 'zh-CN' });
  const page = await ctx.newPage();
  await page.goto('/login?next=/account');
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  const link = await readQr(page);
  await expect(page.getByTestId('nojs-continue')).toBeVisible();
  // The language switch keeps where the login goes on to.
  await expect(page.getByRole('link', { name: 'English' })).toHaveAttribute('href', '/lang?set=en&back=/login%3Fnext%3D/account');
  await shot(page, '11-login-no-javascript');
  const { context, phone } = await phoneScan(browser, link, '李四');
  await phone.getByRole('button', { name: '点击登录' }).click();
  await expect(phone.getByRole('button', { name: '点击登录' })).toBeDisabled();
  await page.getByTestId('nojs-continue').click();
  await page.waitForURL('**/account');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('我的账号');
  await shot(page, '12-account-no-javascript');
  await page.getByTestId('logout').click();
  await page.waitForURL('**/login');
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  await context.close();
  await ctx.close();
});

test('the WASM never arrives: the form shows after a few seconds and still signs in', async ({ page, browser }) => {
  await page.route('**/*.wasm', (route) => route.abort());
  await page.goto('/login');
  const link = await readQr(page);
  await expect(page.getByTestId('nojs-continue')).toBeHidden();
  await expect(page.getByTestId('nojs-continue')).toBeVisible({ timeout: 15_000 });
  const { context, phone } = await phoneScan(browser, link, '王五');
  await phone.getByRole('button', { name: '点击登录' }).click();
  await expect(phone.getByRole('button', { name: '点击登录' })).toBeDisabled();
  await page.getByTestId('nojs-continue').click();
  await page.waitForURL('**/account');
  await context.close();
});
