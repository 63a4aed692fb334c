/** Where a client reached a service path: the address written into the WSDL and into EPRs. */
import type { IncomingMessage } from 'node:http';

export interface PublicAddress {
  /** The service's configured public URL (behind a load balancer), for the endpoint path. */
  publicUrl?: string | undefined;
  /** The endpoint path that publicUrl stands for. */
  path: string;
  tls: boolean;
}

export function endpointUrl(req: IncomingMessage, path: string, at: PublicAddress): string {
  if (at.publicUrl) return path === at.path ? at.publicUrl : new URL(path, at.publicUrl).toString();
  const host = req.headers.host ?? 'localhost';
  return `${at.tls ? 'https' : 'http'}://${host}${path}`;
}
