/**
 * CPU service: hashes for the requested number of milliseconds and answers how many sha256
 * digests it computed. Input is a text payload with the milliseconds ("250"), or XML carrying
 * them as an `ms` attribute or element (<work ms="250"/>, <work><ms>250</ms></work>).
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Payload } from '../../backend/protocol';

export const MAX_MS = 60_000;

const NUMBER = /^\s*(\d+(?:\.\d+)?)\s*$/;
const MS_ATTRIBUTE = /\bms\s*=\s*["']\s*(\d+(?:\.\d+)?)\s*["']/;
const MS_ELEMENT = /<(?:[\w.-]+:)?ms(?:\s[^>]*)?>\s*(\d+(?:\.\d+)?)\s*<\/(?:[\w.-]+:)?ms\s*>/;

export function requestedMs(input: Payload): number {
  let match: RegExpExecArray | null = null;
  if (input.text !== undefined) match = NUMBER.exec(input.text);
  else if (input.xml !== undefined) match = MS_ATTRIBUTE.exec(input.xml) ?? MS_ELEMENT.exec(input.xml);
  if (!match) {
    throw new Error(
      'cpu service expects milliseconds as a text payload or as an XML "ms" attribute or element',
    );
  }
  return Math.min(Number(match[1]), MAX_MS);
}

export function run(input: Payload): Payload {
  const deadline = performance.now() + requestedMs(input);
  let digest: Buffer = Buffer.alloc(32);
  let count = 0;
  // Reading the clock is cheap next to a hash, but checking every 64 keeps it out of the profile.
  while (performance.now() < deadline) {
    for (let i = 0; i < 64; i++) digest = createHash('sha256').update(digest).digest();
    count += 64;
  }
  return { text: String(count) };
}
