import { test, expect, devices, Page } from '@playwright/test';
import * as path from 'path';
import * as fs from 'fs';

// The same phone (contract v3): a phone's browser cannot scan its own screen, so the
// login page leads with 「在微信中打开」; the person confirms in WeChat and comes back.
const shots = path.join(__dirname, '..', 'output');
fs.mkdirSync(shots, { recursive: true });
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
const hydrated = (page: Page) => page.locator('html[data-hydrated="1"]').waitFor();

test('on a phone the link leads; WeChat confirms; back in the browser the page is signed in', async ({ browser }) => {
  const context = await browser.newContext({ ...devices['Pixel 7'], locale: 'zh-CN' });
  const page = await context.newPage();
  await page.goto('http://127.0.0.1:3100/login');
  await hydrated(page);
  const open = page.getByTestId('open-link');
  await expect(open).toBeVisible();
  await expect(open).toHaveText('在微信中打开');
  // The button comes first, the code below it for a second device.
  const buttonBox = (await open.boundingBox())!;
  const qrBox = (await page.getByTestId('qr').boundingBox())!;
  expect(buttonBox.y + buttonBox.height).toBeLessThan(qrBox.y);
  await shot(page, 'same-phone-01-login');

  // "WeChat" opens: the link lands on the simulated phone page on this ticket.
  const href = (await open.getAttribute('href'))!;
  expect(href).toMatch(/\/_wechat\/sim\/urllink\/[0-9a-f]+\?cq=scene%3D[A-Za-z0-9_-]{22}$/);
  const wechat = await context.newPage();
  await wechat.goto(href);
  await expect(wechat).toHaveURL(/\/_wechat\/phone\?scene=[A-Za-z0-9_-]{22}$/);
  await wechat.getByRole('button', { name: '李四' }).click();
  await expect(wechat.locator('#requester')).toBeVisible();
  await wechat.getByRole('button', { name: '点击登录' }).click();
  await expect(wechat.locator('#motto')).toHaveText('已确认，请返回浏览器');
  await shot(wechat, 'same-phone-02-wechat-confirmed');

  // The person goes back to the browser themselves.
  await page.bringToFront();
  await page.waitForURL('**/account');
  await shot(page, 'same-phone-03-account');
  await context.close();
});

test('coming back to the foreground re-polls at once', async ({ browser }) => {
  const context = await browser.newContext({ ...devices['Pixel 7'], locale: 'zh-CN' });
  const page = await context.newPage();
  const polls: string[] = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/api/login/status')) polls.push(r.postData() || '');
  });
  await page.goto('http://127.0.0.1:3100/login');
  await hydrated(page);
  // The first long-poll is open (it waits up to 25 s for a change).
  await expect.poll(() => polls.length).toBe(1);
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  // A second poll, asking for the state now (seen 0), long before the first would end.
  await expect.poll(() => polls.length, { timeout: 3000 }).toBeGreaterThanOrEqual(2);
  expect(JSON.parse(polls[1]).seen).toBe(0);
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
  await context.close();
});

test('on a desktop the code leads and no link is shown; in WeChat the code says 长按识别', async ({ browser, page }) => {
  await page.goto('http://127.0.0.1:3100/login');
  await expect(page.getByTestId('qr')).toBeVisible();
  await expect(page.getByTestId('open-link')).toBeHidden();

  const inWeChat = await browser.newContext({
    ...devices['Pixel 7'],
    locale: 'zh-CN',
    userAgent: devices['Pixel 7'].userAgent + ' MicroMessenger/8.0.50.2701(0x28003237) NetType/WIFI Language/zh_CN',
  });
  const wx = await inWeChat.newPage();
  await wx.goto('http://127.0.0.1:3100/login');
  await expect(wx.getByTestId('open-link')).toBeVisible();
  await expect(wx.getByText('也可长按二维码识别')).toBeVisible();
  await shot(wx, 'same-phone-04-in-wechat');
  await inWeChat.close();
});

test('a link code: the simulated phone reads q as WeChat does; another camera gets the link page', async ({ browser, page }) => {
  await page.goto('http://127.0.0.1:3100/login');
  await page.locator('html[data-hydrated="1"]').waitFor();
  const href = (await page.getByTestId('open-link').getAttribute('href'))!;
  const ticket = /scene%3D([A-Za-z0-9_-]{22})$/.exec(href)![1];
  const context = await browser.newContext({ ...devices['Pixel 7'], locale: 'zh-CN' });

  // Another camera opens PUBLIC_URL/q/<ticket> as a page: it offers the same link.
  const camera = await context.newPage();
  await camera.goto(`http://127.0.0.1:3100/q/${ticket}`);
  await expect(camera.getByTestId('open-link')).toHaveAttribute('href', href);
  // Styled by its own stylesheet (the page's CSP allows no inline style).
  await expect(camera.getByTestId('open-link')).toHaveCSS('background-color', 'rgb(7, 193, 96)');
  await shot(camera, 'same-phone-05-link-page');

  // WeChat's scanner opens the mini program with the code's URL in options.q.
  const phone = await context.newPage();
  await phone.goto(`http://127.0.0.1:3100/_wechat/phone?q=${encodeURIComponent(`http://127.0.0.1:3100/q/${ticket}`)}&scancode_time=1765000000`);
  await phone.getByRole('button', { name: '王五' }).click();
  await expect(phone.locator('#requester')).toBeVisible();
  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'scanned');
  await context.close();
});
