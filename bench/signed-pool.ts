/**
 * Fresh WS-Security signed requests for the benchmark. The proxy accepts each signature once
 * (replay cache), so every request of a run must be signed anew; signing them inside the load
 * generator would steal its CPU, so pools are made before each measured run, on all cores.
 */
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { EnvelopeSigner } from '../src/security/envelope-signer';
import type { SoapVersion } from '../src/soap/envelope';

export interface PoolRequest {
  certFile: string;
  keyFile: string;
  version: SoapVersion;
  /** Body content; every `{n}` is replaced by the request's number so payloads (and keys) differ too. */
  body: string;
  count: number;
}

function sign(req: PoolRequest): string[] {
  const signer = new EnvelopeSigner({ certFile: req.certFile, keyFile: req.keyFile });
  const out: string[] = new Array<string>(req.count);
  for (let i = 0; i < req.count; i++)
    out[i] = signer.envelope(req.version, req.body.replaceAll('{n}', String(i)));
  return out;
}

export async function signedPool(req: PoolRequest): Promise<string[]> {
  const workers = Math.max(1, availableParallelism());
  const share = Math.ceil(req.count / workers);
  const parts = await Promise.all(
    Array.from(
      { length: workers },
      (_, w) =>
        new Promise<string[]>((resolve, reject) => {
          const worker = new Worker(__filename, {
            workerData: { ...req, count: Math.min(share, req.count - w * share) },
          });
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    ),
  );
  return parts.flat();
}

if (!isMainThread && parentPort) {
  parentPort.postMessage(sign(workerData as PoolRequest));
}
