import { defineConfig } from '@playwright/test';
import * as path from 'path';

// `scripts/bench` runs this after its load figures: time to a scannable QR in Chromium,
// against the release build (`cargo leptos build --release`). Two demo servers: 3200
// keeps codes ready (the default pool), 3201 makes each code on demand.
const root = path.resolve(__dirname, '..');
const out = path.join(root, 'target', 'bench-e2e');
const bin = process.env.SCANLOGIN_BIN || path.join(root, 'target', 'release', 'scanlogin');
const server = (port: number, extra: string) => ({
  command: `rm -f ${out}/db-${port}.db* && mkdir -p ${out} && ${bin} ${extra}`,
  cwd: root,
  url: `http://127.0.0.1:${port}/healthz`,
  reuseExistingServer: false,
  timeout: 60_000,
  env: {
    LISTEN: `127.0.0.1:${port}`,
    DATABASE_URL: `sqlite://${out}/db-${port}.db`,
    LEPTOS_SITE_ROOT: process.env.SCANLOGIN_SITE || 'target/site',
    RUST_LOG: 'warn',
    RATE_TICKETS_PER_IP: '0',
    RATE_TICKETS_PER_BROWSER: '0',
  },
});

export default defineConfig({
  testDir: './bench',
  outputDir: './test-results',
  timeout: 300_000,
  workers: 1,
  reporter: [['list']],
  use: {
    locale: 'zh-CN',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    },
  },
  webServer: [server(3200, ''), server(3201, '--qr-pool-size 0')],
});
