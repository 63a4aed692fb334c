/**
 * Owns one GridClient per configured cluster, picks the cluster for connect, and turns
 * grid-side failures into catalogue errors so that services stay thin.
 */
import { GatewayError, type ErrorCodeName } from '../errors/catalogue';
import { GridCallError, GridClient } from '../backend/client';
import { ErrorCode, type Operation, type ReplyBodies, type RequestBodies } from '../backend/protocol';
import type { ClusterConfig } from '../config';

const GRID_TO_GATEWAY: Partial<Record<ErrorCode, ErrorCodeName>> = {
  [ErrorCode.UNKNOWN_CONNECTION]: 'SSP_UNKNOWN_CONNECTION',
  [ErrorCode.UNKNOWN_SESSION]: 'SSP_UNKNOWN_SESSION',
  [ErrorCode.INVALID_ARGUMENT]: 'SSP_INVALID_ARGUMENT',
  [ErrorCode.UNKNOWN_APPLICATION]: 'SSP_UNKNOWN_APPLICATION',
  [ErrorCode.AUTHENTICATION_FAILED]: 'SSP_GRID_AUTHENTICATION',
  [ErrorCode.SESSION_NOT_DETACHED]: 'SSP_SESSION_NOT_DETACHED',
  [ErrorCode.BUSY]: 'SSP_GRID_BUSY',
};

export function toGatewayError(e: unknown, cluster: string): GatewayError {
  if (e instanceof GatewayError) return e;
  if (e instanceof GridCallError) {
    if (e.kind === 'timeout') return new GatewayError('SSP_GRID_TIMEOUT', e.message, { cause: e });
    if (e.kind === 'unavailable') return new GatewayError('SSP_GRID_UNAVAILABLE', e.message, { cause: e });
    const code = GRID_TO_GATEWAY[e.gridCode];
    if (code) return new GatewayError(code, e.message, { cause: e });
    return new GatewayError(
      e.retryable ? 'SSP_GRID_UNAVAILABLE' : 'SSP_INTERNAL',
      `grid ${cluster} failed: ${e.message}`,
      { cause: e },
    );
  }
  return new GatewayError('SSP_INTERNAL', 'unexpected failure talking to the grid', { cause: e });
}

/** Where a call accounts the time it waited for the grid (the request context). */
export interface GridTiming {
  gridMs: number;
}

export class GridRouter {
  private readonly clients = new Map<string, GridClient>();
  private readonly byUrl = new Map<string, string>();

  constructor(
    clusters: ClusterConfig[],
    readonly defaultCluster: string,
  ) {
    for (const c of clusters) {
      this.clients.set(
        c.name,
        new GridClient({
          name: c.name,
          addresses: c.addresses,
          sharedSecret: c.sharedSecret,
          poolSize: c.poolSize,
          connectTimeoutMs: c.connectTimeoutMs,
          requestTimeoutMs: c.requestTimeoutMs,
        }),
      );
      this.byUrl.set(c.name, c.name);
      for (const u of c.urls) this.byUrl.set(u, c.name);
    }
  }

  /** The cluster a connect call goes to: its clusterURL if given, else the default. */
  clusterFor(clusterURL: string | undefined): string {
    if (clusterURL === undefined || clusterURL === '') return this.defaultCluster;
    const name = this.byUrl.get(clusterURL);
    if (!name) {
      throw new GatewayError(
        'SSP_UNKNOWN_CLUSTER',
        `unknown clusterURL '${clusterURL}'; known: ${[...this.byUrl.keys()].join(', ')}`,
      );
    }
    return name;
  }

  /** The cluster a URL (or name) stands for, without throwing: for checking control files. */
  resolve(url: string): string | undefined {
    return this.byUrl.get(url);
  }

  client(cluster: string): GridClient {
    const c = this.clients.get(cluster);
    if (!c)
      throw new GatewayError('SSP_GRID_UNAVAILABLE', `cluster ${cluster} is not configured on this proxy`);
    return c;
  }

  /**
   * Calls the grid, accounting the wait in ctx.gridMs and mapping failures to faults. A call
   * marked retrySafe (its repeat has no further effect) is sent once more when its grid
   * connection dropped under it, so that a lost socket costs the client nothing.
   */
  async call<K extends Operation>(
    ctx: GridTiming,
    cluster: string,
    op: K,
    body: RequestBodies[K],
    timeoutMs?: number,
    opts: { retrySafe?: boolean } = {},
  ): Promise<ReplyBodies[K]> {
    const client = this.client(cluster);
    const t0 = performance.now();
    try {
      try {
        return await client.call(op, body, timeoutMs);
      } catch (e) {
        if (!opts.retrySafe || !(e instanceof GridCallError) || e.kind !== 'unavailable') throw e;
        return await client.call(op, body, timeoutMs);
      }
    } catch (e) {
      throw toGatewayError(e, cluster);
    } finally {
      ctx.gridMs += performance.now() - t0;
    }
  }

  /** Clusters with at least one live grid connection. */
  status(): { cluster: string; connected: number }[] {
    return [...this.clients].map(([cluster, c]) => ({ cluster, connected: c.connectedCount }));
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
  }
}
