import { test, expect, Page } from '@playwright/test';
import * as path from 'path';
import { decodeQrDataUrl } from './qr';

// Number matching (LOGIN_NUMBER_MATCH=true, the server on 3105): the browser shows two
// digits once scanned; the phone picks them from three, and only then signs the browser in.
const base = 'http://127.0.0.1:3105';
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(__dirname, '..', 'output', `${name}.png`), fullPage: true });

test('the browser shows the number, a wrong pick is refused, the right one signs in', async ({ page, browser }) => {
  await page.goto(`${base}/login`);
  await page.locator('html[data-hydrated="1"]').waitFor();
  const link = decodeQrDataUrl((await page.getByTestId('qr').getAttribute('src'))!)!;
  const context = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN' });
  const phone = await context.newPage();
  await phone.goto(link);
  await phone.getByRole('button', { name: '王五' }).click();
  await expect(phone.locator('#numbers')).toBeVisible();

  await expect(page.getByTestId('qr-box')).toHaveAttribute('data-state', 'scanned');
  const shown = (await page.getByTestId('match-number').textContent())!.trim();
  expect(shown).toMatch(/^[1-9][0-9]$/);
  await expect(page.getByTestId('qr-box')).toContainText('在手机上选择这个数字');
  await shot(page, '41-number-browser');

  const numbers = phone.locator('#number-row button');
  await expect(numbers).toHaveCount(3);
  const texts = await numbers.allTextContents();
  expect(texts).toContain(shown);
  await phone.getByRole('button', { name: texts.find((t) => t !== shown)!, exact: true }).click();
  await phone.getByRole('button', { name: '点击登录' }).click();
  await expect(phone.locator('#motto')).toHaveText('数字不对，请选择网页上显示的数字');
  await shot(phone, '42-number-phone-wrong');

  await phone.getByRole('button', { name: shown, exact: true }).click();
  await phone.getByRole('button', { name: '点击登录' }).click();
  await expect(phone.locator('#motto')).toHaveText('已确认，请返回浏览器');
  await page.waitForURL('**/account');
  await context.close();
});
