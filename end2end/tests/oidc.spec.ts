import { test, expect } from '@playwright/test';
import { spawn, execFileSync, ChildProcess } from 'child_process';
import * as http from 'http';
import * as path from 'path';
import * as fs from 'fs';
import { AddressInfo } from 'net';
import { decodeQrDataUrl } from './qr';
// A relying party nobody here wrote: the Node `openid-client` library (npm).
import { Issuer, generators, Client } from 'openid-client';

const root = path.resolve(__dirname, '..', '..');
const out = path.join(root, 'target', 'e2e');
const port = 3103;
const base = `http://127.0.0.1:${port}`;
const shot = (page: import('@playwright/test').Page, name: string) =>
  page.screenshot({ path: path.join(__dirname, '..', 'output', `${name}.png`), fullPage: true });

/** scanlogin with one OIDC client whose redirect URI is the RP below. */
function startProvider(redirectUri: string): Promise<ChildProcess> {
  fs.mkdirSync(out, { recursive: true });
  const db = path.join(out, `db-${port}.db`);
  for (const f of [db, db + '-wal', db + '-shm']) fs.rmSync(f, { force: true });
  const clients = path.join(out, 'oidc-clients.toml');
  fs.writeFileSync(
    clients,
    `[[client]]\nid = "node-rp"\nname = "Node 示例应用"\nsecret = "node-rp-secret-0123456789"\nredirect_uris = ["${redirectUri}"]\n\n` +
      // The same app, open only to the group ops (the access test).
      `[[client]]\nid = "node-rp-ops"\nname = "Ops 应用"\nsecret = "node-rp-secret-0123456789"\nredirect_uris = ["${redirectUri}"]\nallow = ["group:ops"]\n`,
  );
  const child = spawn(path.join(root, 'target', 'debug', 'scanlogin'), [], {
    cwd: root,
    env: { ...process.env, LISTEN: `127.0.0.1:${port}`, DATABASE_URL: `sqlite://${db}`, LEPTOS_SITE_ROOT: 'target/site', OIDC_CLIENTS: clients, RUST_LOG: 'info', NO_COLOR: '1' },
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

/** The relying party: /login starts the flow, /cb finishes it and says who signed in. */
async function startRp(): Promise<{ url: string; close: () => void; setClient: (c: Client) => void }> {
  let client: Client | undefined;
  const pending = new Map<string, { verifier: string; nonce: string }>();
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url || '/', 'http://127.0.0.1');
    try {
      if (url.pathname === '/login' && client) {
        const verifier = generators.codeVerifier();
        const state = generators.state();
        const nonce = generators.nonce();
        pending.set(state, { verifier, nonce });
        const to = client.authorizationUrl({ scope: 'openid profile groups', state, nonce, code_challenge: generators.codeChallenge(verifier), code_challenge_method: 'S256' });
        res.writeHead(302, { location: to }).end();
      } else if (url.pathname === '/cb' && client) {
        const params = client.callbackParams(req);
        const p = pending.get(String(params.state));
        if (!p) throw new Error('unknown state');
        const tokens = await client.callback(client.metadata.redirect_uris![0], params, { state: String(params.state), nonce: p.nonce, code_verifier: p.verifier });
        const claims = tokens.claims(); // the ID token's signature, issuer, audience and nonce are verified
        const info = await client.userinfo(tokens);
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
          `<!doctype html><meta charset="utf-8"><h1 id="who">signed in as ${claims.sub} (${info.name})</h1><p id="amr">${(claims.amr || []).join(',')}</p>` +
            `<p id="groups">${JSON.stringify(claims.groups || null)}</p>`,
        );
      } else {
        res.writeHead(404).end();
      }
    } catch (e) {
      // openid-client turns an error answer (access_denied) into an exception.
      res.writeHead(500, { 'content-type': 'text/html; charset=utf-8' }).end(`<p id="error">${(e as { error?: string }).error || String(e)}</p>`);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port: rpPort } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${rpPort}`, close: () => server.close(), setClient: (c) => (client = c) };
}

test('a Node openid-client app signs in through the scan page', async ({ page, browser }) => {
  const rp = await startRp();
  const provider = await startProvider(`${rp.url}/cb`);
  try {
    const issuer = await Issuer.discover(base);
    rp.setClient(new issuer.Client({ client_id: 'node-rp', client_secret: 'node-rp-secret-0123456789', redirect_uris: [`${rp.url}/cb`], response_types: ['code'] }));

    await page.goto(`${rp.url}/login`);
    await expect(page).toHaveURL(/\/login\?next=%2Foidc%2Fresume%2F|\/login\?next=\/oidc\/resume\//);
    await expect(page.getByTestId('login-title')).toHaveText('登录到 Node 示例应用');
    await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'waiting');
    await shot(page, '20-oidc-login');

    const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src')) || '');
    expect(link).toBeTruthy();
    const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
    const phone = await phoneCtx.newPage();
    await phone.goto(link!);
    await phone.getByRole('button', { name: '张三' }).click();
    await expect(phone.locator('#req-client')).toHaveText('Node 示例应用');
    await expect(phone.locator('#req-client-row')).toBeVisible();
    await shot(phone, '21-oidc-phone');
    await phone.getByRole('button', { name: '点击登录' }).click();

    await page.waitForURL(`${rp.url}/cb**`);
    // sub is opaque and pairwise (never the user id).
    await expect(page.locator('#who')).toContainText(/signed in as [A-Za-z0-9_-]{24} \(微信用户/);
    await expect(page.locator('#amr')).toHaveText('wechat_miniprogram');
    await shot(page, '22-oidc-signed-in');
    await phoneCtx.close();
  } finally {
    provider.kill('SIGKILL');
    rp.close();
  }
});

test('a client open to one group: access_denied outside it, and the groups claim inside', async ({ browser }) => {
  const rp = await startRp();
  const provider = await startProvider(`${rp.url}/cb`);
  try {
    const issuer = await Issuer.discover(base);
    rp.setClient(new issuer.Client({ client_id: 'node-rp-ops', client_secret: 'node-rp-secret-0123456789', redirect_uris: [`${rp.url}/cb`], response_types: ['code'] }));
    // The owner signs in through a setup link (so they can give groups), not yet in ops.
    const printed = execFileSync(path.join(root, 'target', 'debug', 'scanlogin'), ['admin', 'setup-link'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: `sqlite://${path.join(out, `db-${port}.db`)}`, LISTEN: `127.0.0.1:${port}`, RUST_LOG: 'error' },
    }).toString();
    const setup = printed.trim().split('\n').pop()!;
    const ctx = await browser.newContext({ locale: 'zh-CN' });
    const page = await ctx.newPage();
    await page.goto(setup);
    const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src')) || '');
    const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
    const phone = await phoneCtx.newPage();
    await phone.goto(link!);
    await phone.getByRole('button', { name: '张三' }).click();
    await phone.getByRole('button', { name: '点击登录' }).click();
    await page.waitForURL(/\/setup\//);
    await page.getByRole('button', { name: '成为管理员' }).click();
    await page.waitForURL(/\/admin$/);

    // Not in ops: the app gets access_denied, and nothing else.
    await page.goto(`${rp.url}/login`);
    await page.waitForURL(`${rp.url}/cb**`);
    expect(new URL(page.url()).searchParams.get('error')).toBe('access_denied');
    await expect(page.locator('#error')).toHaveText('access_denied');
    await shot(page, '23-oidc-access-denied');

    // In ops (the admin API, as the console's form would): signed in, groups in the token.
    const me = await (await page.request.post(`${base}/api/me`, { data: {} })).json();
    const r = await page.request.post(`${base}/api/admin/user`, { data: { id: me.user.id, groups: ['ops'] } });
    expect(r.status()).toBe(200);
    await page.goto(`${rp.url}/login`);
    // Signed in without ever confirming a login for this app: asked once (security review #5).
    await expect(page.getByTestId('consent')).toContainText('允许「Ops 应用」使用你的账号登录吗');
    await shot(page, '25-oidc-consent');
    await page.getByTestId('allow').click();
    await page.waitForURL(`${rp.url}/cb**`);
    await expect(page.locator('#groups')).toHaveText('["ops"]');
    await expect(page.locator('#who')).toContainText('signed in as');
    await shot(page, '24-oidc-groups');
    await phoneCtx.close();
    await ctx.close();
  } finally {
    provider.kill('SIGKILL');
    rp.close();
  }
});
