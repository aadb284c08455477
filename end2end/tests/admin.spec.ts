import { test, expect, Page, Browser } from '@playwright/test';
import * as path from 'path';
import * as fs from 'fs';
import { execFileSync } from 'child_process';
import { decodeQrDataUrl } from './qr';
import { failOnCspViolation } from './csp';
import { databaseUrl } from '../database';

// The admin console on the server that admits newcomers only after approval (3104):
// the owner becomes admin through `scanlogin admin setup-link`, approves a newcomer,
// gives them groups, reads the audit trail, invites a third person who signs in through
// the invitation, and disables the newcomer — whose browser is then signed out.
const root = path.resolve(__dirname, '..', '..');
const base = 'http://127.0.0.1:3104';
const shots = path.join(__dirname, '..', 'output');
fs.mkdirSync(shots, { recursive: true });
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

// Every page must work under its Content-Security-Policy: a violation fails the test.
test.beforeEach(async ({ page }) => failOnCspViolation(page));

/** Signs the page in as the demo user `user`: reads the QR, scans it on a phone, confirms. */
async function signIn(page: Page, browser: Browser, user: string, landing: RegExp) {
  const img = page.getByTestId('qr');
  await expect(img).toBeVisible();
  const link = decodeQrDataUrl((await img.getAttribute('src')) || '');
  expect(link).toBeTruthy();
  const context = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
  const phone = await context.newPage();
  await phone.goto(link!);
  await phone.getByRole('button', { name: user }).click();
  await expect(phone.locator('#requester')).toBeVisible();
  await phone.getByRole('button', { name: '点击登录' }).click();
  await expect(phone.locator('#motto')).toHaveText('已确认，请返回浏览器');
  await page.waitForURL(landing);
  await context.close();
}

// First in the file: 张三 is still a newcomer here (the next test makes them the admin).
test('the simulated phone offers 头像昵称填写 and says the account waits for approval', async ({ browser }) => {
  const page = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
  await page.goto(`${base}/login`);
  const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src')) || '');
  const context = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
  const phone = await context.newPage();
  await phone.goto(link!);
  await phone.getByRole('button', { name: '张三' }).click();
  await expect(phone.locator('#profile')).toBeVisible();
  await expect(phone.locator('#profile-note')).toHaveText('你的账号需要管理员批准后才能进入受保护的网站');
  await phone.locator('#nickname').fill('违禁的名字');
  await phone.getByRole('button', { name: '保存' }).click();
  await expect(phone.locator('#profile-note')).toContainText('未通过微信内容安全检测');
  await phone.locator('#nickname').fill('张小三');
  await phone.getByRole('button', { name: '保存' }).click();
  await expect(phone.locator('#profile-note')).toHaveText('资料已保存：张小三');
  await expect(phone.locator('#profile')).toBeHidden();
  await shot(phone, '28-phone-profile');
  await phone.getByRole('button', { name: '点击登录' }).click();
  await page.waitForURL(/\/account$/);
  await expect(page.getByTestId('user-name')).toHaveText('张小三');
  await expect(page.getByTestId('account-pending')).toBeVisible();
  await context.close();
});

test('the owner becomes admin, approves a newcomer, and a disable signs them out', async ({ browser }) => {
  const out = execFileSync(path.join(root, 'target', 'debug', 'scanlogin'), ['admin', 'setup-link'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: databaseUrl(3104), LISTEN: '127.0.0.1:3104', RUST_LOG: 'error' },
  }).toString();
  const setup = out.trim().split('\n').pop()!;
  expect(setup).toMatch(/^http:\/\/127\.0\.0\.1:3104\/setup\/[A-Za-z0-9_-]+$/);

  const owner = await (await browser.newContext({ locale: 'zh-CN', viewport: { width: 1100, height: 760 } })).newPage();
  await owner.goto(setup);
  await expect(owner).toHaveURL(/\/login\?next=\/setup\//);
  await signIn(owner, browser, '张三', /\/setup\//);
  await expect(owner.getByRole('button', { name: '成为管理员' })).toBeVisible();
  await shot(owner, '20-setup-link');
  await owner.getByRole('button', { name: '成为管理员' }).click();
  await owner.waitForURL(/\/admin$/);
  await expect(owner.getByTestId('pending-count')).toHaveText('待批准 0');

  // A newcomer signs in: waiting for approval, and told so.
  const newcomer = await (await browser.newContext({ locale: 'zh-CN', viewport: { width: 1100, height: 760 } })).newPage();
  await newcomer.goto(`${base}/login`);
  await signIn(newcomer, browser, '李四', /\/account$/);
  await expect(newcomer.getByTestId('account-pending')).toContainText('等待管理员批准');
  await shot(newcomer, '21-account-pending');
  const id = (await newcomer.getByTestId('user-id').textContent())!.trim();

  // The owner approves them and gives them groups.
  await owner.reload();
  await expect(owner.getByTestId('pending-count')).toHaveText('待批准 1');
  await expect(owner.getByTestId(`status-${id}`)).toHaveText('待批准');
  await shot(owner, '22-admin-pending');
  await owner.getByTestId(`approve-${id}`).click();
  await expect(owner.getByTestId(`status-${id}`)).toHaveText('正常');
  // Typed only once the page has loaded, and Enter's form post waited for by name: a CI
  // run once saw the typed value stay put for 15 s, and this says which half it was —
  // no post sent (the browser) or no answer (the server).
  await owner.waitForLoadState('load');
  await owner.getByTestId(`groups-${id}`).fill('ops, dev');
  const posted = owner.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/admin/user'));
  await owner.getByTestId(`groups-${id}`).press('Enter');
  const answer = await (await posted).response();
  expect(answer?.status()).toBe(302);
  await expect(owner.getByTestId(`groups-${id}`)).toHaveValue('dev,ops');
  await expect(owner.getByTestId('pending-count')).toHaveText('待批准 0');
  await shot(owner, '23-admin-approved');
  await newcomer.reload();
  await expect(newcomer.getByTestId('account-pending')).toHaveCount(0);

  // The audit trail shows what the admin did.
  await owner.goto(`${base}/admin/audit?user=${id}`);
  await expect(owner.getByTestId('audit')).toContainText('status pending→active');
  await shot(owner, '24-admin-audit');

  // An invitation: made in the console (link and QR shown once), and 王五 comes in through
  // it, active at once with its group.
  await owner.goto(`${base}/admin/invitations`);
  await owner.getByTestId('new-invitation').locator('input[name=groups]').fill('dev');
  await owner.getByRole('button', { name: '生成邀请链接' }).click();
  const inviteUrl = await owner.getByTestId('invite-url').inputValue();
  expect(inviteUrl).toMatch(/\/invite\/[A-Za-z0-9_-]+$/);
  await expect(owner.getByTestId('invite-qr')).toBeVisible();
  await shot(owner, '25-invitation-made');
  const guest = await (await browser.newContext({ locale: 'zh-CN', viewport: { width: 1100, height: 760 } })).newPage();
  await guest.goto(inviteUrl);
  await expect(guest.getByTestId('invite')).toContainText('邀请你使用本站');
  await guest.getByRole('link', { name: '扫码登录并接受邀请' }).click();
  await signIn(guest, browser, '王五', /\/invite\//);
  await guest.getByRole('button', { name: '接受邀请' }).click();
  await guest.waitForURL(/\/account$/);
  await expect(guest.getByTestId('account-pending')).toHaveCount(0);
  await owner.goto(`${base}/admin/invitations`);
  await expect(owner.locator('[data-testid^=uses-]').first()).toHaveText('1 / 1');
  await shot(owner, '26-invitations');

  // Disabled: the newcomer's browser is signed out at once.
  await owner.goto(`${base}/admin`);
  await owner.getByTestId(`disable-${id}`).click();
  await expect(owner.getByTestId(`status-${id}`)).toHaveText('已停用');
  await newcomer.reload();
  await expect(newcomer).toHaveURL(/\/login\?next=\/account$/);
  await shot(owner, '27-admin-disabled');
});
