import { defineConfig } from '@playwright/test';
import * as path from 'path';
import { databaseUrl, freshDatabase } from './database';

// Two demo servers built by `cargo leptos build`: one with default lifetimes, one whose
// codes expire after 4 s (for the expired → 刷新 path). Each gets a fresh database
// (SQLite; PostgreSQL with E2E_POSTGRES_URL, see database.ts).
const root = path.resolve(__dirname, '..');
const server = (port: number, extra: string) => ({
  command: `${freshDatabase(port)} && ${root}/target/debug/scanlogin ${extra}`,
  cwd: root,
  url: `http://127.0.0.1:${port}/login`,
  reuseExistingServer: false,
  timeout: 60_000,
  env: {
    LISTEN: `127.0.0.1:${port}`,
    DATABASE_URL: databaseUrl(port),
    LEPTOS_SITE_ROOT: 'target/site',
    RUST_LOG: 'warn',
  },
});

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: 'http://127.0.0.1:3100',
    locale: 'zh-CN',
    viewport: { width: 1100, height: 760 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  // 3100 keeps codes ready (the default pool); 3101 has none, so every code is made on
  // demand — where a WeChat failure while a code is made shows. 3104 lets newcomers in
  // only after an admin approves them (the admin console's test; 3102 and 3103 belong to the resilience and OIDC tests).
  // 3105 matches numbers (LOGIN_NUMBER_MATCH).
  webServer: [
    server(3100, ''),
    server(3101, '--ticket-ttl-secs 4 --qr-pool-size 0'),
    server(3104, '--signup approval'),
    server(3105, '--login-number-match true'),
  ],
});
