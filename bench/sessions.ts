/**
 * What the drain benchmarks (pull.ts, notify.ts) share: unsigned SOAP calls to a proxy, and a
 * session whose outputs are all finished before anything is measured (the tasks go straight to
 * the grid, so the bench measures the draining, not the submitting).
 */
import type { GridClient } from '../src/backend/client';
import type { ProxyProcess } from '../test/helpers/processes';

export const SYM = 'http://soapproxy.symphony/v1';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** One SOAP 1.1 call that must answer 200 (security is off in these benches). */
export async function call(url: string, inner: string): Promise<string> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>${inner}</s:Body></s:Envelope>`,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`call failed (${res.status}): ${text.slice(0, 400)}`);
  return text;
}

export function pick(xml: string, local: string): string | undefined {
  return new RegExp(`<(?:[\\w.-]+:)?${local}(?:\\s[^>]*)?>([^<]*)</(?:[\\w.-]+:)?${local}>`).exec(xml)?.[1];
}

/** connect + createSession on the echo application, through the proxy. */
export async function openSession(proxy: ProxyProcess): Promise<string> {
  const c = await call(
    proxy.url,
    `<sym:connect xmlns:sym="${SYM}"><sym:applicationName>echo</sym:applicationName><sym:username>bench</sym:username><sym:password>pw</sym:password></sym:connect>`,
  );
  const s = await call(
    proxy.url,
    `<sym:createSession xmlns:sym="${SYM}"><sym:connectionId>${pick(c, 'connectionId')!}</sym:connectionId></sym:createSession>`,
  );
  return pick(s, 'sessionId')!;
}

/** A session of the proxy with `outputs` finished text tasks of `payload`, submitted straight to the grid. */
export async function filledSession(
  proxy: ProxyProcess,
  grid: GridClient,
  outputs: number,
  payload: string,
): Promise<string> {
  const sessionId = await openSession(proxy);
  const tasks = Array.from({ length: 500 }, () => ({ tag: '', priority: 1, payload: { text: payload } }));
  for (let sent = 0; sent < outputs; sent += tasks.length) {
    await grid.call('sendTasks', {
      sessionId,
      tasks: tasks.slice(0, Math.min(tasks.length, outputs - sent)),
    });
  }
  for (let i = 0; i < 6000; i++) {
    const st = await grid.call('sessionStatus', { sessionId });
    if (st.done + st.failed >= outputs) return sessionId;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the grid did not run the tasks within 5 minutes');
}

/**
 * One leased fetchTaskOutput of up to `page` outputs that acknowledges the previous page's token;
 * the outputs it carried and the token the next page acknowledges.
 */
export async function fetchPage(
  proxy: ProxyProcess,
  sessionId: string,
  page: number,
  acknowledge: string | undefined,
): Promise<{ outputs: number; token: string | undefined }> {
  const r = await call(
    proxy.url,
    `<sym:fetchTaskOutput xmlns:sym="${SYM}"><sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>${page}</sym:countMax>` +
      `<sym:timeoutMillis>1000</sym:timeoutMillis><sym:leaseMillis>60000</sym:leaseMillis>` +
      (acknowledge ? `<sym:acknowledge>${acknowledge}</sym:acknowledge>` : '') +
      `</sym:fetchTaskOutput>`,
  );
  return { outputs: r.split('<sym:taskId>').length - 1, token: pick(r, 'deliveryToken') };
}
