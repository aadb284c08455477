import jsQR from 'jsqr';
import * as jpeg from 'jpeg-js';

/**
 * Decodes the QR in a `data:image/jpeg;base64,…` URL (in Node: nothing is injected into
 * the page, whose CSP stays in force). Returns null when there is no readable code.
 */
export function decodeQrDataUrl(src: string): string | null {
  const m = /^data:image\/jpeg;base64,(.+)$/.exec(src);
  if (!m) return null;
  const raw = jpeg.decode(Buffer.from(m[1], 'base64'), { useTArray: true, formatAsRGBA: true });
  const code = jsQR(new Uint8ClampedArray(raw.data.buffer), raw.width, raw.height);
  return code ? code.data : null;
}
