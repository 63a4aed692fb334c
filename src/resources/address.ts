/**
 * Endpoint references of sessions and connections, and which resource a request addresses.
 *
 * The key is in the Address path (`…/symphony/sessions/{id}`), because zeep and wsimport clients
 * send to the Address and nothing else; it is also a reference parameter, which GT4- and
 * CXF-style clients echo as a SOAP header. Neither is covered by the client's signature (it
 * signs the Body), so the resource is only ever served to its owner: see ownership.ts.
 */
import { GatewayError } from '../errors/catalogue';
import type { ResolvedCall } from '../pipeline/context';
import { endpointUrl, type PublicAddress } from '../server/endpoint-url';
import { SYM, WSA } from '../soap/ws-namespaces';
import { childElements, escapeText, textOf } from '../soap/xml';

export type ResourceKind = 'session' | 'connection';

const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PARAMETER: Record<ResourceKind, string> = { session: 'SessionId', connection: 'ConnectionId' };
const SEGMENT: Record<ResourceKind, string> = { session: 'sessions', connection: 'connections' };

/** The resource's address, below the service path the call came to. */
export function resourceAddress(
  ctx: ResolvedCall,
  at: PublicAddress | undefined,
  kind: ResourceKind,
  id: string,
): string {
  const base = endpointUrl(ctx.req, ctx.path, at ?? { path: ctx.path, tls: false });
  return `${base.replace(/\/$/, '')}/${SEGMENT[kind]}/${encodeURIComponent(id)}`;
}

/** A WS-Addressing 1.0 endpoint reference, as connect and createSession return it. */
export function endpointReference(address: string, kind: ResourceKind, id: string): string {
  return referenceElement('wsa:EndpointReference', address, PARAMETER[kind], id);
}

/**
 * An endpoint reference written as element `tag` (a prefixed name declared in scope, or a wsa
 * one): the Address, and the key repeated as reference parameter `sym:{parameter}`.
 */
export function referenceElement(tag: string, address: string, parameter: string, id: string): string {
  return (
    `<${tag} xmlns:wsa="${WSA}"><wsa:Address>${escapeText(address)}</wsa:Address>` +
    `<wsa:ReferenceParameters><sym:${parameter} xmlns:sym="${SYM}">${escapeText(id)}</sym:${parameter}>` +
    `</wsa:ReferenceParameters></${tag}>`
  );
}

/** The resource key a reference-parameter header carries (with or without wsa:IsReferenceParameter). */
export function referenceParameter(ctx: ResolvedCall, kind: ResourceKind): string | undefined {
  if (!ctx.header) return undefined;
  const blocks = childElements(ctx.header).filter((c) => c.uri === SYM && c.local === PARAMETER[kind]);
  if (blocks.length > 1) {
    throw new GatewayError('SSP_INVALID_ARGUMENT', `more than one sym:${PARAMETER[kind]} header; send one`);
  }
  return blocks[0] ? textOf(blocks[0]).trim() : undefined;
}

function unknown(message: string): GatewayError {
  return new GatewayError('SSP_RESOURCE_UNKNOWN', message);
}

/**
 * The session or connection a WS-Resource request is for: from the address, else from a
 * reference parameter. An address and a parameter that disagree are refused, not guessed.
 */
export function addressedResource(ctx: ResolvedCall): { kind: ResourceKind; id: string } {
  if (ctx.resource?.kind === 'subscription' || ctx.resource?.kind === 'pullpoint') {
    throw unknown(
      `this address is a ${ctx.resource.kind}, not a session or connection; send the request to the Address of the session's or connection's endpoint reference`,
    );
  }
  const fromPath = ctx.resource as { kind: ResourceKind; id: string | undefined } | undefined;
  const session = referenceParameter(ctx, 'session');
  const connection = referenceParameter(ctx, 'connection');
  let kind: ResourceKind;
  let id: string | undefined;
  if (fromPath?.id !== undefined) {
    kind = fromPath.kind;
    id = fromPath.id;
    const echoed = kind === 'session' ? session : connection;
    if (echoed !== undefined && echoed !== id) {
      throw unknown(`the address names ${kind} ${id}, but the reference parameter names ${echoed}`);
    }
  } else if (fromPath) {
    kind = fromPath.kind;
    id = kind === 'session' ? session : connection;
  } else if (session !== undefined && connection !== undefined) {
    throw unknown(
      'both a SessionId and a ConnectionId reference parameter; send the one of the resource meant',
    );
  } else {
    kind = session !== undefined ? 'session' : 'connection';
    id = session ?? connection;
  }
  if (id === undefined) {
    throw unknown(
      `no ${fromPath ? fromPath.kind : 'session or connection'} is addressed; send the request to the Address of its endpoint reference (…/${fromPath ? SEGMENT[fromPath.kind] : 'sessions'}/{id})`,
    );
  }
  if (!ID.test(id)) throw unknown(`'${id.slice(0, 40)}' is not a ${kind} id`);
  return { kind, id };
}
