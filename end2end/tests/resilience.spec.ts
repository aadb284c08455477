import { test, expect } from '@playwright/test';
import { spawn, ChildProcess } from 'child_process';
import * as path from 'path';
import * as fs from 'fs';
import { decodeQrDataUrl } from './qr';

// A server we can SIGKILL and restart on the same port and database.
const root = path.resolve(__dirname, '..', '..');
const out = path.join(root, 'target', 'e2e');
const port = 3102;
const base = `http://127.0.0.1:${port}`;
const db = path.join(out, `db-${port}.db`);

function start(): Promise<ChildProcess> {
  const child = spawn(path.join(root, 'target', 'debug', 'scanlogin'), [], {
    cwd: root,
    env: { ...process.env, LISTEN: `127.0.0.1:${port}`, DATABASE_URL: `sqlite://${db}`, LEPTOS_SITE_ROOT: 'target/site', RUST_LOG: 'info', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let log = '';
    const onData = (d: Buffer) => {
      log += d;
      if (log.includes('listening on')) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${log}`)));
  });
}

const shot = (page: import('@playwright/test').Page, name: string) =>
  page.screenshot({ path: path.join(__dirname, '..', 'output', `${name}.png`), fullPage: true });

async function kill(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

test('SIGKILL between every step: the login completes and the page resumes by itself', async ({ page, browser }) => {
  test.setTimeout(90_000);
  fs.mkdirSync(out, { recursive: true });
  for (const f of [db, db + '-wal', db + '-shm']) fs.rmSync(f, { force: true });
  let server = await start();
  try {
    await page.goto(`${base}/login`);
    await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
    const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src'))!)!;
    expect(link).toContain('/_wechat/phone?scene=');
    // The QR is in the first HTML; the page follows it once its WASM has taken over.
    await page.locator('html[data-hydrated="1"]').waitFor();

    // created → killed → restarted: the page retries quietly, says so after a few
    // failures, and carries on by itself once the server is back.
    await kill(server);
    await expect(page.getByTestId('reconnecting')).toHaveText('网络连接不稳定，正在重试…', { timeout: 15_000 });
    await shot(page, '11-login-reconnecting');
    server = await start();
    await expect(page.getByTestId('reconnecting')).toHaveText('', { timeout: 20_000 });
    await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
    const phoneCtx = await browser.newContext({ locale: 'zh-CN' });
    const phone = await phoneCtx.newPage();
    await phone.goto(link);
    await phone.getByRole('button', { name: '王五' }).click();
    await expect(phone.locator('#requester')).toBeVisible();
    await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'scanned', { timeout: 20_000 });

    // scanned → killed → restarted: the phone's confirm token still works.
    await kill(server);
    server = await start();
    await phone.getByRole('button', { name: '点击登录' }).click();
    await expect(phone.locator('#motto')).toHaveText('已确认，请返回浏览器');

    // confirmed: the page finalizes (through another restart if it must) and lands.
    await page.waitForURL('**/account', { timeout: 30_000 });
    await expect(page.getByTestId('user-name')).toContainText('微信用户');

    // finalized → killed → restarted: the session survives; nothing is accepted twice
    // (and without the finalize key, which only the page had, not even once).
    await kill(server);
    server = await start();
    await page.reload();
    await expect(page).toHaveURL(/\/account$/);
    await expect(page.getByTestId('user-name')).toContainText('微信用户');
    const ticket = new URL(link).searchParams.get('scene');
    const again = await page.request.post(`${base}/api/login/finalize`, { data: { ticket }, headers: { accept: 'application/json' } });
    expect(again.status()).toBe(404);
    expect((await again.json()).code).toBe('ticket_not_found');
    await phoneCtx.close();
  } finally {
    await kill(server).catch(() => {});
  }
});

test('SIGTERM mid-login: the open long-poll is answered, the process exits 0, the page carries on', async ({ page, browser }) => {
  test.setTimeout(90_000);
  fs.mkdirSync(out, { recursive: true });
  for (const f of [db, db + '-wal', db + '-shm']) fs.rmSync(f, { force: true });
  let server = await start();
  try {
    await page.goto(`${base}/login`);
    await page.locator('html[data-hydrated="1"]').waitFor();
    const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src'))!)!;
    const phoneCtx = await browser.newContext({ locale: 'zh-CN' });
    const phone = await phoneCtx.newPage();
    await phone.goto(link);
    await phone.getByRole('button', { name: '王五' }).click();
    await expect(phone.locator('#requester')).toBeVisible();
    await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'scanned');

    // The page holds a long-poll now. SIGTERM: it is answered with the ticket's state
    // (scanned) instead of being held, so the process exits 0 well before the 10 s a
    // held request could keep it.
    const statuses: number[] = [];
    page.on('response', (r) => { if (r.url().endsWith('/api/login/status')) statuses.push(r.status()); });
    const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
    const sent = Date.now();
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - sent).toBeLessThan(8_000);
    await expect.poll(() => statuses[0], { timeout: 5_000 }).toBe(200);
    await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'scanned');
    await shot(page, '12-login-after-sigterm');

    // A server is back (the page re-polls wherever it lands): the login completes.
    server = await start();
    await phone.getByRole('button', { name: '点击登录' }).click();
    await expect(phone.locator('#motto')).toHaveText('已确认，请返回浏览器');
    await page.waitForURL('**/account', { timeout: 30_000 });
    await expect(page.getByTestId('user-name')).toContainText('微信用户');
    await phoneCtx.close();
  } finally {
    await kill(server).catch(() => {});
  }
});
